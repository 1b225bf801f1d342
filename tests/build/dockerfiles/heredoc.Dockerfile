FROM busybox
ARG WHO=world
RUN <<EOF
echo "hello $WHO" > /greeting
echo second line >> /greeting
EOF
COPY <<-EOT /etc/motd
	welcome $WHO
	EOT
COPY <<'RAW' /raw.txt
not expanded: $WHO
RAW
CMD cat /greeting /etc/motd /raw.txt
