"""engram_sdk.model"""
