#!/usr/bin/env bash
# One course from opening to completion, as a partner clinic's developer would drive it.
# Needs a server started with KACT_SIMULATED_TIME=1 (the X-Kact-Now header replays months in seconds).
set -euo pipefail
KACT=${KACT:-http://127.0.0.1:8000}
OP=${OP:?set OP to the operator key that kact up printed}
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
post() {  # post PATH JSON [SIMULATED-TIME] ; authenticates with $AUTH
  curl -sS --fail-with-body -X POST "$KACT$1" -H "Authorization: Bearer $AUTH" \
    -H 'Content-Type: application/json' ${3:+-H "X-Kact-Now: $3"} -d "$2"
}

# 1. The operator onboards a clinic; its API key is shown once.
CLINIC=$(AUTH=$OP post /v1/clinics '{"name": "Harbour Couples Therapy", "timezone": "Europe/Berlin"}')
CLINIC_ID=$(echo "$CLINIC" | j "['id']"); AUTH=$(echo "$CLINIC" | j "['api_key']")

# 2. The clinic adds a therapist and a prescriber (the prescriber's own key is shown once).
THERAPIST=$(post /v1/clinics/$CLINIC_ID/clinicians '{"name": "Mara Lind", "role": "therapist"}' | j "['id']")
RX=$(post /v1/clinics/$CLINIC_ID/clinicians '{"name": "Dr. Ines Vogt", "role": "prescriber"}')
RX_ID=$(echo "$RX" | j "['id']"); RX_KEY=$(echo "$RX" | j "['api_key']")

# 3. Open a course: taking turns, two integration sessions after each medicine session.
COURSE=$(post /v1/courses '{"model": "taking_turns", "partners": {"a": "couple-4711-a", "b": "couple-4711-b"},
  "protocol": {"min_integration_sessions": 2}}' | j "['id']")

# 4. Assessment: both partners screened eligible, one joint assessment session held.
for P in a b; do
  post /v1/courses/$COURSE/screenings "{\"partner\": \"$P\", \"result\": \"eligible\", \"clinician_id\": \"$THERAPIST\"}" >/dev/null
done
book() {  # book KIND START END [PARTNERS-JSON] -> session id
  post /v1/courses/$COURSE/sessions "{\"kind\": \"$1\", \"starts_at\": \"$2\", \"ends_at\": \"$3\",
    \"partners\": ${4:-[\"a\", \"b\"]}, \"clinician_ids\": [\"$THERAPIST\"]}" | j "['id']"
}
held() { post /v1/courses/$COURSE/sessions/$1/record "{\"outcome\": \"held\", \"clinician_id\": \"$THERAPIST\"}" "$2" >/dev/null; }
S=$(book assessment 2026-01-05T09:00:00Z 2026-01-05T10:30:00Z); held $S 2026-01-05T11:00:00Z

# 5. Preparation: each partner alone, then two joint sessions.
D=6; for PARTNERS in '["a"]' '["b"]' '["a", "b"]' '["a", "b"]'; do
  S=$(book preparation 2026-01-0${D}T09:00:00Z 2026-01-0${D}T10:00:00Z "$PARTNERS"); held $S 2026-01-0${D}T11:00:00Z
  D=$((D + 1))
done

# 6. A medicine session at the home clinic; the prescriber approves partner a's dose.
MED=$(book medicine 2026-01-12T09:00:00Z 2026-01-12T12:00:00Z)
APPROVAL=$(post /v1/courses/$COURSE/dose-approvals "{\"session_id\": \"$MED\", \"partner\": \"a\",
  \"prescriber_id\": \"$RX_ID\", \"requested_mg\": 100}" 2026-01-11T09:00:00Z | j "['id']")
AUTH=$RX_KEY post /v1/dose-approvals/$APPROVAL/decision '{"approve": true, "reason": "screening fine"}' \
  2026-01-11T10:00:00Z >/dev/null

# 7. Record it held: the dose, vitals before / ~40 min after / at discharge, and the discharge.
vitals() { echo "{\"partner\": \"a\", \"stage\": \"$1\", \"at\": \"$2\", \"systolic\": 126, \"diastolic\": 82, \"heart_rate\": 74, \"acceptable\": true}"; }
post /v1/courses/$COURSE/sessions/$MED/record "{\"outcome\": \"held\", \"clinician_id\": \"$THERAPIST\",
  \"doses\": [{\"partner\": \"a\", \"approval_id\": \"$APPROVAL\", \"mg\": 100, \"at\": \"2026-01-12T09:10:00Z\"}],
  \"vitals\": [$(vitals pre 2026-01-12T09:00:00Z), $(vitals post 2026-01-12T09:50:00Z), $(vitals discharge 2026-01-12T11:15:00Z)],
  \"discharged_at\": \"2026-01-12T11:20:00Z\"}" 2026-01-12T12:30:00Z >/dev/null

# 8. Integration: the first within 48 h of the medicine session, then one more.
S=$(book integration 2026-01-13T09:00:00Z 2026-01-13T10:00:00Z); held $S 2026-01-13T11:00:00Z
S=$(book integration 2026-01-15T09:00:00Z 2026-01-15T10:00:00Z); held $S 2026-01-15T11:00:00Z

# 9. Complete the course, then read it and its audit history.
post /v1/courses/$COURSE/complete '{}' | j "['status']"
curl -sS -H "Authorization: Bearer $AUTH" $KACT/v1/courses/$COURSE | j "['milestones']"
curl -sS -H "Authorization: Bearer $AUTH" $KACT/v1/courses/$COURSE/events | j "[-1]['type']"
