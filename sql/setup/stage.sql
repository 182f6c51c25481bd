-- Without a storage integration: the local emulator (or a stage whose credentials are managed
-- outside this project).
CREATE STAGE IF NOT EXISTS {ns}.{stage}
  URL = {stage_url}
  FILE_FORMAT = (TYPE = JSON);
