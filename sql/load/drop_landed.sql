-- Landed lines naming a manifest whose lines are not what the load validated: never promoted.
DELETE FROM {ns}.AUDIT_MANIFEST_LANDING WHERE V:manifest::VARCHAR IS NOT DISTINCT FROM %(file_name)s;
