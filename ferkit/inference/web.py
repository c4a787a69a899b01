"""`ferkit serve`: a small web page (upload a photo or use the browser's camera, see the faces
boxed with their emotions) and the JSON API it calls.

    GET  /                  the page
    POST /api/predict       the image as the request body, or a multipart form field `image`;
                            query `raw=true` (uncalibrated), `min_confidence=0.4`
    GET  /api/health        {"status": "ok", "model": ...}

A photo is read like every other input (`read_gray` within `ReadLimits`: formats, bytes and
pixels bounded before decoding), so a bad upload is a 400 with the same reason `predict` and
the served model give. A body over the byte limit is a 413 and is never kept: what the client
still sends is read and dropped (up to a bound), so that it reads the 413 rather than a reset
connection, as a browser uploading a too-large photo would.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from ferkit.data.images import BadImage, ReadLimits, read_gray
from ferkit.inference.faces import FacePredictor, to_face_array
from ferkit.inference.photos import detect_in
from ferkit.inference.web_page import PAGE
from ferkit.runtime import freed_memory_returned


class UploadError(ValueError):
    """An upload that cannot be predicted; `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def predict_photo(predictor: FacePredictor, data: bytes, limits: ReadLimits, params: dict) -> dict:
    """{'width', 'height', 'faces': [{box, label, confidence, uncertain, probabilities}]} for one photo."""
    raw, min_confidence = _params(params, predictor)
    with freed_memory_returned():  # a large photo's pixels and the detector's buffers: not kept for reuse
        try:
            gray = read_gray(data, limits).pixels
        except BadImage as exc:
            raise UploadError(f"cannot read image: {exc}") from None
        boxes = detect_in(gray)
    faces = []
    if boxes:
        crops = np.stack([to_face_array(gray[y : y + h, x : x + w]) for x, y, w, h in boxes])
        for box, probs in zip(boxes, predictor.predict_proba(crops, raw=raw)):
            faces.append({"box": list(box), **predictor.describe(probs, min_confidence)})
    return {"width": int(gray.shape[1]), "height": int(gray.shape[0]), "faces": faces}


def _params(params: dict, predictor: FacePredictor) -> tuple[bool, float]:
    """(raw, min_confidence) from query text, checked like the served model's params."""
    from ferkit.inference.rows import RequestError, request_params

    values: dict = {}
    if "raw" in params:
        text = str(params["raw"]).lower()
        if text not in ("true", "false", "1", "0"):
            raise UploadError(f"param `raw` must be true or false, got {params['raw']!r}")
        values["raw"] = text in ("true", "1")
    if "min_confidence" in params:
        try:
            values["min_confidence"] = float(params["min_confidence"])
        except ValueError:
            raise UploadError(
                f"param `min_confidence` must be a number from 0 to 1, got {params['min_confidence']!r}"
            ) from None
    values.update({k: v for k, v in params.items() if k not in ("raw", "min_confidence")})
    try:
        return request_params(values, predictor)
    except RequestError as exc:
        raise UploadError(str(exc)) from None


def create_app(predictor: FacePredictor, model_name: str, limits: ReadLimits | None = None):
    """The Starlette application: the page, the prediction API and a health check."""
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    limits = limits or ReadLimits.from_env()
    lock = asyncio.Lock()  # one prediction at a time: torch already uses every core for one

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": model_name})

    async def predict(request: Request) -> JSONResponse:
        try:
            data = await _upload(request, limits)
            async with lock:
                result = await asyncio.to_thread(predict_photo, predictor, data, limits, dict(request.query_params))
        except UploadError as exc:  # after a 413 the connection closes (the body was drained up to a bound)
            close = {"connection": "close"} if exc.status == 413 else None
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=close)
        except ClientDisconnect:  # the client left mid-upload: no one to answer, nothing wrong here
            return Response(status_code=400)
        except Exception as exc:  # a bug, not the upload: say what, keep the traceback in the server's log
            logging.getLogger(__name__).exception("prediction failed")
            return JSONResponse({"error": f"prediction failed: {type(exc).__name__}: {exc}"}, status_code=500)
        return JSONResponse(result)

    return Starlette(
        routes=[Route("/", page), Route("/api/health", health), Route("/api/predict", predict, methods=["POST"])]
    )


async def _upload(request, limits: ReadLimits) -> bytes:
    """The image bytes of a request: the body, or the form field `image`; never more than the byte limit."""
    cap = limits.max_file_bytes + 64 * 1024  # room for a form's headers around the file
    declared = request.headers.get("content-length")
    stream = request.stream()
    if declared is not None and declared.isdigit() and int(declared) > cap:
        await _drop_rest(stream, limits)
        raise UploadError(f"upload of {int(declared):,} bytes is over the limit of {limits.max_file_bytes:,}", 413)
    body = bytearray()
    async for chunk in stream:  # a body without (or lying about) its length is bounded too
        body += chunk
        if len(body) > cap:
            body.clear()
            await _drop_rest(stream, limits)
            raise UploadError(f"upload is over the limit of {limits.max_file_bytes:,} bytes", 413)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _form_image(request, bytes(body))
    if not body:
        raise UploadError("the request has no image: send the image as the body or as the form field `image`")
    return bytes(body)


async def _drop_rest(stream, limits: ReadLimits) -> None:
    """Read and drop the rest of a refused body, at most 4x the byte limit (16 MB at least) or 30 s.

    A server that answers while the client is still sending, then closes, resets the connection
    under the client, which then sees a network error instead of the 413. Past the bound the
    connection is closed all the same: a client sending gigabytes gets a reset.
    """
    from starlette.requests import ClientDisconnect

    left = max(4 * limits.max_file_bytes, 16 * 2**20)
    try:
        async with asyncio.timeout(30):
            async for chunk in stream:
                left -= len(chunk)
                if left <= 0:
                    return
    except (TimeoutError, ClientDisconnect):
        return


async def _form_image(request, body: bytes) -> bytes:
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    from starlette.exceptions import HTTPException

    try:
        form = await Request(request.scope, replay).form()
    except HTTPException as exc:  # Starlette's answer to a malformed multipart body
        raise UploadError(f"the form cannot be read: {exc.detail}") from None
    image = form.get("image")
    if not isinstance(image, UploadFile):
        raise UploadError("the form has no file field `image`")
    return await image.read()
