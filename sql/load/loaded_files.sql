-- Which of the candidate files already reached the typed tables (the ledger).
SELECT FILE_NAME FROM {ns}.AUDIT_LOAD_LEDGER WHERE FILE_NAME IN ({file_list});
