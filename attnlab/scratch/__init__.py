"""attnlab.scratch"""
