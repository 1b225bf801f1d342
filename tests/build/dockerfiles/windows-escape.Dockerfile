# escape=`
ARG BASE=busybox
FROM ${BASE}
ARG WIN="C:\Program Files\app"
ENV WINPATH=C:\Windows\System32 `
    QUOTED="say `"hi`" now" `
    LITERAL=`$HOME `
    BOTH="$WIN\bin" `
    SINGLE='a\b`c'
ENV LEGACY C:\legacy\path
LABEL win.path="C:\Program Files\app" tick="x``y" dollar="`$NOT" plain=a\b
EXPOSE 80 `
    81
WORKDIR /app\sub
COPY a.txt C:\dest.txt
COPY ["b.txt", "C:\\json.txt"]
RUN printf '%s|' "$WINPATH" "$QUOTED" "$LITERAL" "$BOTH" "$SINGLE" "$LEGACY" > /out.txt
USER ${WIN:+1000}
CMD ["C:\\app\\run.exe", "--flag"]
ENTRYPOINT ["c:\windows\system32\cmd.exe", "/S"]
