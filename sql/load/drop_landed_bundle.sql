-- Landed lines of an archive bundle that are not what the load checked: never promoted.
DELETE FROM {ns}.AUDIT_PAYLOAD_LANDING WHERE V:bundle::VARCHAR IS NOT DISTINCT FROM %(file_name)s;
