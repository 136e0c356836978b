#!/usr/bin/env bash
# The first donation, against `make run` (API=... for another stack). tests/e2e/test_docs_snippets.py runs it.
set -euo pipefail
# --8<-- [start:commands]
API=${API:-http://127.0.0.1:3000}

answer=$(curl -s -X POST "$API/donations" -H 'Content-Type: application/json' \
  -H "Idempotency-Key: demo-$(date +%s%N)" \
  -d '{"amount": 2500, "currency": "usd", "email": "ada@example.org", "name": "Ada Lovelace",
       "payment_method": "pm_card_visa", "save_card": true}')
echo "$answer"   # {"donation_id":"don_...","status":"succeeded"}

donation_id=$(echo "$answer" | sed -E 's/.*"donation_id": *"([^"]+)".*/\1/')
sleep 2
curl -s "$API/donations/$donation_id"   # ..."card_saved":true,"receipt_sent":true,...
echo
# --8<-- [end:commands]
