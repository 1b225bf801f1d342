FROM busybox
ONBUILD COPY a.txt /from-trigger.txt
ONBUILD RUN echo triggered > /triggered
