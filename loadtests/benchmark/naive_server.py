"""The server a user might write instead of attention-serve: FastAPI + uvicorn calling Hugging Face
`transformers` pipelines, one request at a time. Used only as the benchmark's baseline, on the same weights.

    SENTIMENT_MODEL_DIR=/path/to/hf-sentiment QA_MODEL_DIR=/path/to/hf-qa uvicorn loadtests.benchmark.naive_server:app

Routes are plain `def`s, so FastAPI runs them in its thread pool and keeps parsing requests while the model
works; a lock lets one request at a time into the pipeline (pipelines are not thread-safe, and two forward
passes on 2 cores only slow each other down). A task whose model directory is not set has no route.
"""

import os
import threading

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
app = FastAPI()
lock = threading.Lock()


class SentimentBody(BaseModel):
    text: str


class QABody(BaseModel):
    question: str
    context: str


if "SENTIMENT_MODEL_DIR" in os.environ:
    classifier = pipeline("text-classification", model=os.environ["SENTIMENT_MODEL_DIR"], device=-1)

    @app.post("/v1/sentiment")
    def sentiment(body: SentimentBody) -> dict:
        with lock:
            out = classifier(body.text)[0]
        return {"results": [{"label": out["label"], "score": out["score"]}]}


if "QA_MODEL_DIR" in os.environ:
    reader = pipeline("question-answering", model=os.environ["QA_MODEL_DIR"], device=-1)

    @app.post("/v1/qa")
    def qa(body: QABody) -> dict:
        with lock:
            out = reader(question=body.question, context=body.context)
        return {"results": [{"answers": [{"text": out["answer"], "score": out["score"]}]}]}
