"""engram_sdk.evals"""
