"""The baseline of bench_start.py: an empty FastAPI app on uvicorn, with a ``/readyz``.

What any FastAPI service pays to start; filterd's start-up is measured against it.
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/readyz")
def readyz() -> dict[str, str]:
    return {"status": "ready"}
