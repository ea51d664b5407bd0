#!/usr/bin/env bash
# One course from opening to completion, as a partner clinic's developer would drive it.
# Needs a server started with KACT_SIMULATED_TIME=1 (the X-Kact-Now header replays months in seconds).
set -euo pipefail
KACT=${KACT:-http://127.0.0.1:8000}
OP=${OP:?set OP to the operator key that kact up printed}
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
post() {  # post PATH JSON [SIMULATED-TIME] ; authenticates with $AUTH; prints a refusal's problem details
  local body
  body=$(curl -sS --fail-with-body -X POST "$KACT$1" -H "Authorization: Bearer $AUTH" \
    -H 'Content-Type: application/json' ${3:+-H "X-Kact-Now: $3"} -d "$2") || { echo "refused: $body" >&2; return 1; }
  echo "$body"
}

# 1. The operator onboards the couple's therapy practice; its API key is shown once.
CLINIC=$(AUTH=$OP post /v1/clinics '{"name": "Harbour Couples Therapy", "timezone": "Europe/Berlin"}')
CLINIC_ID=$(echo "$CLINIC" | j "['id']"); AUTH=$(echo "$CLINIC" | j "['api_key']")
THERAPIST=$(post /v1/clinics/$CLINIC_ID/clinicians '{"name": "Mara Lind", "role": "therapist"}' | j "['id']")

# 2. ... and the ketamine clinic that will host the medicine session, with its prescriber (whose own key is
#    shown once) and its treatment room. Each clinic acts with its own key.
KC=$(AUTH=$OP post /v1/clinics '{"name": "Lindenhof Ketamine Clinic", "timezone": "Europe/Berlin"}')
KC_ID=$(echo "$KC" | j "['id']"); KC_KEY=$(echo "$KC" | j "['api_key']")
RX=$(AUTH=$KC_KEY post /v1/clinics/$KC_ID/clinicians '{"name": "Dr. Ines Vogt", "role": "prescriber"}')
RX_ID=$(echo "$RX" | j "['id']"); RX_KEY=$(echo "$RX" | j "['api_key']")
ROOM=$(AUTH=$KC_KEY post /v1/clinics/$KC_ID/rooms '{"name": "Treatment room 2"}' | j "['id']")

# 3. A partnership both clinics agree to, covering medicine sessions (I11).
post /v1/partnerships "{\"partner_clinic_id\": \"$KC_ID\", \"kinds\": [\"medicine\"]}" >/dev/null
AUTH=$KC_KEY post /v1/partnerships "{\"partner_clinic_id\": \"$CLINIC_ID\", \"kinds\": [\"medicine\"]}" | j "['state']"

# 4. Open a course: taking turns, two integration sessions after each medicine session.
COURSE=$(post /v1/courses '{"model": "taking_turns", "partners": {"a": "couple-4711-a", "b": "couple-4711-b"},
  "protocol": {"min_integration_sessions": 2}}' | j "['id']")

# 5. Assessment: both partners screened eligible, one joint assessment session held.
for P in a b; do
  post /v1/courses/$COURSE/screenings "{\"partner\": \"$P\", \"result\": \"eligible\", \"clinician_id\": \"$THERAPIST\"}" >/dev/null
done
book() {  # book KIND START END [PARTNERS-JSON] -> session id, at the practice with its therapist
  post /v1/courses/$COURSE/sessions "{\"kind\": \"$1\", \"starts_at\": \"$2\", \"ends_at\": \"$3\",
    \"partners\": ${4:-[\"a\", \"b\"]}, \"clinician_ids\": [\"$THERAPIST\"]}" 2026-01-01T09:00:00Z | j "['id']"
}
held() { post /v1/courses/$COURSE/sessions/$1/record "{\"outcome\": \"held\", \"clinician_id\": \"$THERAPIST\"}" "$2" >/dev/null; }
S=$(book assessment 2026-01-05T09:00:00Z 2026-01-05T10:30:00Z); held $S 2026-01-05T11:00:00Z

# 6. Preparation: each partner alone, then two joint sessions.
D=6; for PARTNERS in '["a"]' '["b"]' '["a", "b"]' '["a", "b"]'; do
  S=$(book preparation 2026-01-0${D}T09:00:00Z 2026-01-0${D}T10:00:00Z "$PARTNERS"); held $S 2026-01-0${D}T11:00:00Z
  D=$((D + 1))
done

# 7. The practice books the medicine session at the ketamine clinic, in its room, with its prescriber.
MED=$(post /v1/courses/$COURSE/sessions "{\"kind\": \"medicine\", \"partners\": [\"a\", \"b\"],
  \"starts_at\": \"2026-01-12T09:00:00Z\", \"ends_at\": \"2026-01-12T12:00:00Z\", \"clinic_id\": \"$KC_ID\",
  \"room_id\": \"$ROOM\", \"clinician_ids\": [\"$RX_ID\"]}" 2026-01-01T09:00:00Z | j "['id']")

# 8. The ketamine clinic sees its week (an index that follows within moments; nothing of the couple but who
#    is dosed) and confirms the session with its own key.
week() { curl -sS -H "Authorization: Bearer $KC_KEY" "$KACT/v1/clinics/$KC_ID/hosted-sessions?from=2026-01-09T00:00:00Z"; }
until week | grep -q "$MED"; do sleep 0.2; done; week | j "[0]['doses']"
AUTH=$KC_KEY post /v1/courses/$COURSE/sessions/$MED/confirm '{"decision": "confirmed"}' | j "['confirmation']"

# 9. The practice asks the host's prescriber to approve partner a's dose; she approves with her own key.
APPROVAL=$(post /v1/courses/$COURSE/dose-approvals "{\"session_id\": \"$MED\", \"partner\": \"a\",
  \"prescriber_id\": \"$RX_ID\", \"requested_mg\": 100}" 2026-01-11T09:00:00Z | j "['id']")
AUTH=$RX_KEY post /v1/dose-approvals/$APPROVAL/decision '{"approve": true, "reason": "screening fine"}' \
  2026-01-11T10:00:00Z >/dev/null

# 10. The ketamine clinic records it held, under its prescriber's name: the dose, vitals before / ~40 min
#     after / at discharge, and the discharge.
vitals() { echo "{\"partner\": \"a\", \"stage\": \"$1\", \"at\": \"$2\", \"systolic\": 126, \"diastolic\": 82, \"heart_rate\": 74, \"acceptable\": true}"; }
AUTH=$KC_KEY post /v1/courses/$COURSE/sessions/$MED/record "{\"outcome\": \"held\", \"clinician_id\": \"$RX_ID\",
  \"doses\": [{\"partner\": \"a\", \"approval_id\": \"$APPROVAL\", \"mg\": 100, \"at\": \"2026-01-12T09:10:00Z\"}],
  \"vitals\": [$(vitals pre 2026-01-12T09:00:00Z), $(vitals post 2026-01-12T09:50:00Z), $(vitals discharge 2026-01-12T11:15:00Z)],
  \"discharged_at\": \"2026-01-12T11:20:00Z\"}" 2026-01-12T12:30:00Z >/dev/null

# 11. Integration at the practice: the first within 48 h of the medicine session, then one more.
S=$(book integration 2026-01-13T09:00:00Z 2026-01-13T10:00:00Z); held $S 2026-01-13T11:00:00Z
S=$(book integration 2026-01-15T09:00:00Z 2026-01-15T10:00:00Z); held $S 2026-01-15T11:00:00Z

# 12. A command that breaks a rule is refused (409), its problem details naming every rule it breaks: here a second
#     medicine session two days after the first (I5), at the practice, which has no prescriber (I11).
post /v1/courses/$COURSE/sessions "{\"kind\": \"medicine\", \"partners\": [\"a\", \"b\"], \"starts_at\": \"2026-01-14T09:00:00Z\",
  \"ends_at\": \"2026-01-14T12:00:00Z\", \"clinician_ids\": [\"$THERAPIST\"]}" 2026-01-13T12:00:00Z || echo "refused, as it should be"

# 13. Complete the course, then read it and its audit history (who recorded what, with which key).
post /v1/courses/$COURSE/complete '{}' | j "['status']"
curl -sS -H "Authorization: Bearer $AUTH" $KACT/v1/courses/$COURSE | j "['milestones']"
curl -sS -H "Authorization: Bearer $AUTH" $KACT/v1/courses/$COURSE/events | j "[-1]['type']"
