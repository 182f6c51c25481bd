CREATE STAGE IF NOT EXISTS {ns}.{stage}
  URL = {stage_url}
  STORAGE_INTEGRATION = {storage_integration}
  FILE_FORMAT = (TYPE = JSON);
