FROM scratch
COPY worker /worker
ENTRYPOINT ["/worker"]
