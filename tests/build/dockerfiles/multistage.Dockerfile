FROM busybox AS build
RUN mkdir -p /out/bin && echo built > /out/bin/tool && chmod 0750 /out/bin/tool \
 && ln -s tool /out/bin/alias \
 && echo 'app:x:1234:1234::/home/app:/bin/sh' >> /etc/passwd \
 && echo 'app:x:1234:' >> /etc/group
COPY --chown=1234:1234 sub/ /home/app/sub
COPY a.txt /secret.txt

FROM busybox AS unused
RUN echo unused > /unused

FROM busybox AS final
WORKDIR /srv
COPY --from=build /out /opt/
COPY --from=build /etc/passwd /etc/passwd
COPY --from=0 /home/app /home/app
COPY *.txt texts/
ADD arch.tar.gz /unpacked/
ADD arch.tar.gz /unpacked-into-file
COPY link /linked
COPY sub/deep /etc
ENV HOME=/home/app
USER app
CMD ["cat", "/opt/bin/tool"]

FROM final AS extra
RUN echo extra > /tmp/extra
