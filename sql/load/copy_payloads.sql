COPY INTO {ns}.AUDIT_PAYLOAD_LANDING
  FROM @{ns}.{stage}
  FILES = ({files})
  FILE_FORMAT = (TYPE = JSON);
