"""A C-core gRPC client (Debian's python3-grpcio) calling Echo through Switchyard.

Usage: echo_client.py TARGET [--ca CA_PEM --server-name NAME] [--metadata KEY=VALUE]...

Runs every check below against TARGET and prints one JSON object: for each
check what the client saw (messages, metadata, status), for the test to
assert on. A check that raises is reported with its error; the script itself
exits 0 unless it cannot run at all.
"""
import argparse
import json
import sys
import time
import traceback

import grpc

from echo_proto import decode_response, encode_request

SERVICE = "/switchyard.demo.v1.Echo/"
LARGE = 3 * 1024 * 1024
BINARY = bytes([0, 1, 2, 0xFE, 0xFF])
# Sent with every call (--metadata): what the proxy may route on.
EXTRA = []


def metadata_dict(metadata):
    out = {}
    for key, value in metadata or ():
        out[key] = value.hex() if isinstance(value, bytes) else value
    return out


def unary(channel):
    call = channel.unary_unary(SERVICE + "Unary", request_serializer=encode_request, response_deserializer=decode_response)
    response, rpc = call.with_call(
        {"payload": b"p" * LARGE, "response_bytes": LARGE},
        metadata=(("x-interop", "python"), ("x-interop-bin", BINARY), ("x-interop-long", "l" * 4000), *EXTRA),
        timeout=30,
    )
    return {
        "backend": response["backend"],
        "payload_bytes": len(response["payload"]),
        "backend_saw": [line for line in response["metadata"] if line.startswith("x-interop")],
        "initial_metadata": metadata_dict(rpc.initial_metadata()),
        "trailing_metadata": metadata_dict(rpc.trailing_metadata()),
        "code": rpc.code().value[0],
    }


def client_stream(channel):
    call = channel.stream_unary(SERVICE + "ClientStream", request_serializer=encode_request, response_deserializer=decode_response)
    messages = ({"payload": bytes([i]) * 65536} for i in range(64))
    response = call(messages, metadata=EXTRA, timeout=30)
    return {"backend": response["backend"], "messages": response["sequence"], "received_bytes": response["received_bytes"]}


def server_stream(channel):
    call = channel.unary_stream(SERVICE + "ServerStream", request_serializer=encode_request, response_deserializer=decode_response)
    sequences = []
    total = 0
    backend = ""
    for response in call({"count": 64, "response_bytes": 65536}, metadata=EXTRA, timeout=30):
        sequences.append(response["sequence"])
        total += len(response["payload"])
        backend = response["backend"]
    return {"backend": backend, "in_order": sequences == list(range(64)), "messages": len(sequences), "bytes": total}


def bidi(channel):
    call = channel.stream_stream(SERVICE + "Bidi", request_serializer=encode_request, response_deserializer=decode_response)
    requests = [{"payload": i.to_bytes(4, "big")} for i in range(200)] + [{"payload": b"b" * (1024 * 1024)}]
    echoed = [response["payload"] for response in call(iter(requests), metadata=EXTRA, timeout=30)]
    return {
        "responses": len(echoed),
        "in_order": [int.from_bytes(p, "big") for p in echoed[:200]] == list(range(200)),
        "last_bytes": len(echoed[-1]) if echoed else 0,
    }


def deadline(channel):
    call = channel.unary_unary(SERVICE + "Unary", request_serializer=encode_request, response_deserializer=decode_response)
    started = time.monotonic()
    try:
        call({"delay_ms": 5000}, metadata=EXTRA, timeout=0.3)
    except grpc.RpcError as error:
        return {"code": error.code().value[0], "elapsed_ms": round((time.monotonic() - started) * 1000)}
    return {"code": 0}


def error_status(channel):
    call = channel.unary_unary(SERVICE + "Unary", request_serializer=encode_request, response_deserializer=decode_response)
    try:
        call({"fail_code": 5, "fail_message": "no such thing, said the backend"}, metadata=EXTRA, timeout=10)
    except grpc.RpcError as error:
        return {"code": error.code().value[0], "details": error.details(), "trailing_metadata": metadata_dict(error.trailing_metadata())}
    return {"code": 0}


CHECKS = {"unary": unary, "client_stream": client_stream, "server_stream": server_stream, "bidi": bidi,
          "deadline": deadline, "error_status": error_status}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--ca")
    parser.add_argument("--server-name")
    parser.add_argument("--metadata", action="append", default=[])
    args = parser.parse_args()
    EXTRA.extend(tuple(item.split("=", 1)) for item in args.metadata)
    options = [("grpc.max_receive_message_length", 16 * 1024 * 1024), ("grpc.max_send_message_length", 16 * 1024 * 1024)]
    if args.ca:
        with open(args.ca, "rb") as file:
            credentials = grpc.ssl_channel_credentials(root_certificates=file.read())
        if args.server_name:
            options.append(("grpc.ssl_target_name_override", args.server_name))
        channel = grpc.secure_channel(args.target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(args.target, options=options)
    results = {"grpc_version": grpc.__version__}
    with channel:
        for name, check in CHECKS.items():
            try:
                results[name] = check(channel)
            except Exception as error:  # reported, so the test names the check that failed
                results[name] = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc(limit=3)}
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
