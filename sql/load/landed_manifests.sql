-- Every manifest line COPY landed (this run's and a crashed run's), by the manifest it names:
-- checked against what the load validated before promoting any of them.
SELECT V:manifest::VARCHAR AS FILE_NAME, V AS RECORD FROM {ns}.AUDIT_MANIFEST_LANDING;
