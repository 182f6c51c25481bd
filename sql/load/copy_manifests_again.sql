-- Manifests the load history skips although none of their rows is landed, raw or ledgered (their
-- landed rows were dropped as not what was validated): copied again, then checked again.
COPY INTO {ns}.AUDIT_MANIFEST_LANDING
  FROM @{ns}.{stage}
  FILES = ({files})
  FILE_FORMAT = (TYPE = JSON)
  FORCE = TRUE;
