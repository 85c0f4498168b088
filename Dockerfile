# Two images from one file:
#   gateway: the HTTP service (no torch, no Triton)
#   triton:  NVIDIA's Triton image with the vlm model and the transformers engine on the GPU
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3

FROM python:3.11-slim AS gateway
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY gateway gateway
COPY inference inference
COPY model_repository model_repository
COPY migrations migrations
RUN pip install --no-cache-dir -c constraints.txt .
USER nobody
ENV VISIONGATE_CACHE_DIR=/tmp/visiongate PYTHONUNBUFFERED=1
EXPOSE 8000
# uvicorn drains on SIGTERM (VISIONGATE_GRACEFUL_SHUTDOWN_S); /healthz is the liveness probe.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"]
ENTRYPOINT ["visiongate"]
CMD ["serve", "--host", "0.0.0.0"]

FROM ${TRITON_IMAGE} AS triton
WORKDIR /opt/visiongate
COPY pyproject.toml README.md constraints.txt ./
COPY gateway gateway
COPY inference inference
COPY model_repository /models
# torch with CUDA comes from the default index here: this image has the GPU.
RUN pip install --no-cache-dir torch transformers safetensors tokenizers llguidance msgspec pillow \
 && pip install --no-cache-dir --no-deps .
RUN sed -i 's/KIND_CPU/KIND_GPU/' /models/vlm/config.pbtxt
# HTTP stays inside the container, for the health check.
CMD ["tritonserver", "--model-repository=/models", "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"]
