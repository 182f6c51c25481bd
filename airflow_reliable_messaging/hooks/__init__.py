"""Hooks: one per service, on top of the Amazon and Snowflake providers' hooks.

Hooks own every API call, batching, retries (botocore's retry modes, not home-made loops) and
partial-failure handling. Operators never call boto3 or the Snowflake connector directly.
"""
