"""engram_sdk.stores"""
