import json

WEBHOOK = "/api/webhooks/{}"
LEAD = {
    "external_id": "ext-1",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "phone": "(212) 555-0100",
    "zipcode": "10001",
}


def post_json(client, code: str, body, key: str | None = None, **headers):
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    if key is not None:
        headers["HTTP_X_API_KEY"] = key
    return client.post(WEBHOOK.format(code), data=raw, content_type="application/json", **headers)


def post_form(client, code: str, raw: str, key: str | None = None, **headers):
    if key is not None:
        headers["HTTP_X_API_KEY"] = key
    return client.post(WEBHOOK.format(code), data=raw, content_type="application/x-www-form-urlencoded", **headers)


def assert_failure(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert set(body) == {"success", "message", "errors", "timestamp"}
    return body


def assert_success(response, status: int):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is True
    assert set(body) == {"success", "message", "data", "timestamp"}
    return body["data"]
