"""llmfy plugin for AWS Bedrock Runtime through boto3."""
