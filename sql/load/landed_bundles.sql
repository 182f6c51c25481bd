-- Every archive-bundle line COPY landed (``bundle_version``: the load's own payload bundles have
-- none), by the bundle it names: checked against what the load checked before promoting any of them.
SELECT V:bundle::VARCHAR AS FILE_NAME, V AS RECORD FROM {ns}.AUDIT_PAYLOAD_LANDING WHERE V:bundle_version IS NOT NULL;
