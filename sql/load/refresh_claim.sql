-- Extends the claim only while this execution still holds it (0 rows updated: it lost it).
UPDATE {ns}.AUDIT_LOAD_CLAIM SET EXPIRES_AT = DATEADD(second, %(lease_seconds)s, CURRENT_TIMESTAMP())
WHERE NAME = 'landing' AND TOKEN = %(token)s;
