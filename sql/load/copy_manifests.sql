-- Snowflake's load history skips files this table already loaded: a rerun copies nothing twice.
COPY INTO {ns}.AUDIT_MANIFEST_LANDING
  FROM @{ns}.{stage}
  FILES = ({files})
  FILE_FORMAT = (TYPE = JSON);
