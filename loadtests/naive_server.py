"""The server a user might write instead of attention-serve: FastAPI + uvicorn calling the Hugging Face
`transformers` pipeline once per request. Used only as the benchmark's baseline, on the same weights.

    MODEL_DIR=/path/to/hf-checkpoint TASK=sentiment uvicorn loadtests.naive_server:app --port 8001
"""

import os

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
TASK = os.environ.get("TASK", "sentiment")
MODEL_DIR = os.environ["MODEL_DIR"]
model = pipeline("text-classification" if TASK == "sentiment" else "question-answering", model=MODEL_DIR, device=-1)
app = FastAPI()


class SentimentBody(BaseModel):
    text: str


class QABody(BaseModel):
    question: str
    context: str


@app.post("/v1/sentiment")
def sentiment(body: SentimentBody) -> dict:
    out = model(body.text, top_k=None)
    return {"results": [{"label": max(out, key=lambda o: o["score"])["label"]}]}


@app.post("/v1/qa")
def qa(body: QABody) -> dict:
    out = model(question=body.question, context=body.context)
    return {"results": [{"answers": [{"text": out["answer"], "score": out["score"]}]}]}
