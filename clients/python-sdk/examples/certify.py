# pip install dsmooth   (clients/python-sdk; it pulls the generated denoised-smoothing-client)
import os

from dsmooth import DsmoothClient, ProblemError

url = os.environ.get("DSMOOTH_URL", "http://127.0.0.1:8000")
with DsmoothClient(url, api_key=os.environ.get("DSMOOTH_API_KEY")) as client:
    try:
        certificate = client.certify("cat.png", n=1000, sigma=0.25)
    except ProblemError as error:  # any 4xx/5xx: the RFC 9457 problem is error.problem
        raise SystemExit(f"problem: {error}") from error
    print(certificate.label, certificate.radius)
    verdict = client.verify(certificate)  # offline: signature, bound and radius recomputed
    print("valid" if verdict.valid else verdict.messages)

    job = client.create_job("cat.png", n=2000)
    for event in client.events(job.id):  # Server-Sent Events, as they happen
        print(event.event, event.job.progress.done, "/", event.job.progress.planned)
