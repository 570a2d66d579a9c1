"""The Echo service (src/demo/echo.proto) on a C-core gRPC server (Debian's python3-grpcio).

Usage: echo_server.py NAME [--cert CERT_PEM --key KEY_PEM]

Listens on 127.0.0.1 on a port the OS picks (TLS when given a certificate),
prints {"port": N} once it does, and serves until its standard input closes.
It answers as the Node Echo backend does (src/demo/echo-service.ts): every
response names the backend, Unary and ServerStream honour delay_ms, count,
response_bytes and fail_code, and the metadata the request carried comes back
as "key=value" lines.
"""
import argparse
import base64
import json
import sys
import time
from concurrent import futures

import grpc

from echo_proto import decode_request, encode_response

STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}


def metadata_lines(context):
    lines = []
    for key, value in context.invocation_metadata():
        lines.append(f"{key}=bin:{base64.b64encode(value).decode()}" if isinstance(value, bytes) else f"{key}={value}")
    return sorted(lines)


def payload_for(request):
    return b"a" * request["response_bytes"] if request["response_bytes"] else request["payload"]


class Echo:
    def __init__(self, name):
        self.name = name

    def _fail(self, request, context):
        if request["fail_code"]:
            context.set_trailing_metadata((("x-failure-detail", "requested"), ("x-backend", self.name)))
            context.abort(STATUS_BY_NUMBER[request["fail_code"]], request["fail_message"])

    def unary(self, request, context):
        context.send_initial_metadata((("x-backend", self.name),))
        if request["delay_ms"]:
            time.sleep(request["delay_ms"] / 1000)
        self._fail(request, context)
        context.set_trailing_metadata((("x-backend", self.name),))
        return {"payload": payload_for(request), "backend": self.name, "metadata": metadata_lines(context)}

    def client_stream(self, requests, context):
        received = 0
        messages = 0
        for request in requests:
            received += len(request["payload"])
            messages += 1
        context.set_trailing_metadata((("x-backend", self.name),))
        return {"backend": self.name, "sequence": messages, "received_bytes": received, "metadata": metadata_lines(context)}

    def server_stream(self, request, context):
        payload = payload_for(request)
        for sequence in range(request["count"]):
            if request["delay_ms"]:
                time.sleep(request["delay_ms"] / 1000)
            yield {"payload": payload, "backend": self.name, "sequence": sequence}
        self._fail(request, context)
        context.set_trailing_metadata((("x-backend", self.name),))

    def bidi(self, requests, context):
        for sequence, request in enumerate(requests):
            self._fail(request, context)
            yield {"payload": payload_for(request), "backend": self.name, "sequence": sequence}
        context.set_trailing_metadata((("x-backend", self.name),))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    echo = Echo(args.name)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(echo.unary, request_deserializer=decode_request, response_serializer=encode_response),
        "ClientStream": grpc.stream_unary_rpc_method_handler(echo.client_stream, request_deserializer=decode_request, response_serializer=encode_response),
        "ServerStream": grpc.unary_stream_rpc_method_handler(echo.server_stream, request_deserializer=decode_request, response_serializer=encode_response),
        "Bidi": grpc.stream_stream_rpc_method_handler(echo.bidi, request_deserializer=decode_request, response_serializer=encode_response),
    }
    options = [("grpc.max_receive_message_length", 16 * 1024 * 1024), ("grpc.max_send_message_length", 16 * 1024 * 1024)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("switchyard.demo.v1.Echo", handlers),))
    if args.cert:
        with open(args.cert, "rb") as cert, open(args.key, "rb") as key:
            credentials = grpc.ssl_server_credentials(((key.read(), cert.read()),))
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(json.dumps({"port": port}) + "\n")
    sys.stdout.flush()
    # Serve until the test closes our standard input (or kills us).
    sys.stdin.read()
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
