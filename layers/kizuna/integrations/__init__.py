"""Adapters to AWS services (boto3 lives here and in kizuna.store only)."""
