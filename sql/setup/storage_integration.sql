-- Account-level (ACCOUNTADMIN or a role with CREATE INTEGRATION). Not run on the emulator.
CREATE STORAGE INTEGRATION IF NOT EXISTS {storage_integration}
  TYPE = EXTERNAL_STAGE
  STORAGE_PROVIDER = 'S3'
  ENABLED = TRUE
  STORAGE_AWS_ROLE_ARN = {storage_role_arn}
  STORAGE_ALLOWED_LOCATIONS = ({stage_url});
