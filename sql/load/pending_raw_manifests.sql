-- Manifests whose rows reached the raw table but not yet the ledger (a run crashed after promoting).
SELECT DISTINCT FILE_NAME FROM {ns}.RAW_AUDIT_MANIFEST WHERE FILE_NAME NOT IN (SELECT FILE_NAME FROM {ns}.AUDIT_LOAD_LEDGER);
