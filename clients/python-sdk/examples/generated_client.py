# pip install denoised-smoothing-client   (clients/python, generated: package dsmooth_client)
import base64
import os

from dsmooth_client import AuthenticatedClient
from dsmooth_client.api.certification import certify
from dsmooth_client.models import CertifyRequest, Problem

url = os.environ.get("DSMOOTH_URL", "http://127.0.0.1:8000")
token = os.environ.get("DSMOOTH_API_KEY", "-")  # a server without keys takes any token
with AuthenticatedClient(base_url=url, token=token) as client, open("cat.png", "rb") as file:
    image = base64.b64encode(file.read()).decode()
    result = certify.sync(client=client, body=CertifyRequest(image=image, n=1000, sigma=0.25))
    if result is None or isinstance(result, Problem):
        raise SystemExit(f"problem: {result}")
    print(result.label, result.radius)
