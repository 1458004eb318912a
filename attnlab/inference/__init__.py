"""attnlab.inference"""
