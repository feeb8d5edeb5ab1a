# The same image with its own HEALTHCHECK (the strongest evidence an unknown image can give).
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}
COPY serve.pl /serve.pl
USER 10001:10001
ENTRYPOINT ["perl", "/serve.pl"]
CMD ["http", "8080"]
HEALTHCHECK --interval=2s --timeout=5s --retries=5 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
