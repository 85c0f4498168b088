# Four stages, one wheel:
#   wheel:   builds visiongate's wheel (`pip wheel --no-deps .`), the artefact every image installs
#   gateway: the HTTP service (no torch, no Triton), the wheel with constraints.txt
#   triton:  NVIDIA's Triton image with the wheel's vlm model and the transformers engine on the GPU
#   triton-trtllm: NVIDIA's Triton image with TensorRT-LLM, the same vlm model, engine trtllm
# Written for nvcr.io/nvidia/tritonserver:24.12-py3 (Triton 2.53.0, CUDA 12.6.3, Ubuntu 24.04 with
# Python 3.12: visiongate needs Python >= 3.11, so 24.10 and older, on Python 3.10, cannot run it).
# Never built here (no Docker engine): see docs/deploy.md, "What has been run".
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.12-py3
# The -trtllm-python-py3 variant ships tensorrt_llm, its torch and transformers. Chosen for
# TensorRT-LLM 1.2.x, not confirmed against NVIDIA's release notes (docs/deploy.md, "TensorRT-LLM").
ARG TRTLLM_TRITON_IMAGE=nvcr.io/nvidia/tritonserver:26.02-trtllm-python-py3

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY inference inference
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim AS gateway
COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir -c /tmp/constraints.txt /wheels/visiongate-*.whl
USER nobody
WORKDIR /tmp
ENV VISIONGATE_CACHE_DIR=/tmp/visiongate PYTHONUNBUFFERED=1
EXPOSE 8000
# uvicorn drains on SIGTERM (VISIONGATE_GRACEFUL_SHUTDOWN_S); /healthz is the liveness probe.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"]
ENTRYPOINT ["visiongate"]
CMD ["serve", "--host", "0.0.0.0"]

FROM ${TRITON_IMAGE} AS triton
# The image's Python is the system one (Ubuntu 24.04 marks it externally managed).
ENV PIP_BREAK_SYSTEM_PACKAGES=1
COPY docker/triton-constraints.txt /tmp/triton-constraints.txt
COPY --from=wheel /wheels /wheels
# Only what the vlm model imports, every version pinned; torch from PyPI is its CUDA build,
# with its own CUDA libraries. The wheel goes in without its dependencies: the gateway's are
# not needed here, and tritonserver comes with the image (not nvidia-pytriton's).
RUN pip install --no-cache-dir -c /tmp/triton-constraints.txt \
      torch transformers safetensors tokenizers llguidance msgspec pillow numpy \
 && pip install --no-cache-dir --no-deps /wheels/visiongate-*.whl
# The model repository is the wheel's own (inference/model_repository), on the GPU.
RUN cp -r "$(python3 -c 'from importlib.resources import files; print(files("inference") / "model_repository")')" \
      /models \
 && sed -i 's/KIND_CPU/KIND_GPU/' /models/vlm/config.pbtxt
# HTTP stays inside the container, for the health check.
CMD ["tritonserver", "--model-repository=/models", "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"]

FROM ${TRTLLM_TRITON_IMAGE} AS triton-trtllm
ENV PIP_BREAK_SYSTEM_PACKAGES=1
COPY docker/trtllm-constraints.txt /tmp/trtllm-constraints.txt
COPY --from=wheel /wheels /wheels
# tensorrt_llm, torch, transformers, llguidance, pillow and numpy are the image's own (the
# versions TensorRT-LLM was built with); only what it lacks is added, pinned.
RUN pip install --no-cache-dir -c /tmp/trtllm-constraints.txt msgspec \
 && pip install --no-cache-dir --no-deps /wheels/visiongate-*.whl
RUN cp -r "$(python3 -c 'from importlib.resources import files; print(files("inference") / "model_repository")')" \
      /models \
 && sed -i 's/KIND_CPU/KIND_GPU/' /models/vlm/config.pbtxt
ENV VISIONGATE_ENGINE=trtllm
CMD ["tritonserver", "--model-repository=/models", "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"]
