"""The model zoo: manifest, downloads, API"""
