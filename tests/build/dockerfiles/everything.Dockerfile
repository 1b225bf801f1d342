# syntax=docker/dockerfile:1
# A comment before the first instruction
ARG BASE=busybox
FROM ${BASE} AS base
ARG V=1
ARG UNSET
ENV A=b C="d e" \
    PATH_EXTRA=$V
MAINTAINER someone
WORKDIR /app
WORKDIR sub
COPY a.txt .
COPY sub /s/
COPY ["a.txt", "sub/b", "/multi/"]
RUN echo $V > v && ls /app/sub && \
    # a comment inside a continuation
    echo done
LABEL x=y "quoted key"="a b" from.env=$A
EXPOSE 80/tcp 53/udp 8000-8001
VOLUME /data /other
USER 1000:1000
CMD ["sh"]
HEALTHCHECK --interval=5s --retries=3 CMD true
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo hi
ENTRYPOINT echo hi
