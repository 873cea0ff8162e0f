# GPU serving image. TensorFlow's `and-cuda` extra brings the CUDA and cuDNN
# runtime as pip wheels; the host provides the NVIDIA driver through the NVIDIA
# Container Toolkit. Build a CPU-only image with
#   docker build --build-arg TENSORFLOW=tensorflow==2.21.0 -t model-serving:cpu .
# checkov:skip=CKV_DOCKER_7: the base image is an ARG whose default is a version tag (checkov cannot resolve ARGs)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TENSORFLOW="tensorflow[and-cuda]==2.21.0"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
# The service alone: training/ (and its extras) stay out of the image.
COPY app ./app
RUN pip install "${TENSORFLOW}" && pip install .

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    APP_MODEL_ROOT=/srv/models
RUN useradd --system --uid 10001 --home-dir /srv --shell /usr/sbin/nologin serving
COPY --from=build /opt/venv /opt/venv
# Root-owned: the service user reads the models and cannot change them.
COPY models /srv/models
USER serving
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["python", "-m", "app.server", "--host", "0.0.0.0", "--port", "8000"]
