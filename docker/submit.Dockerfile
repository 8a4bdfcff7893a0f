FROM scratch
COPY submit /submit
ENTRYPOINT ["/submit"]
