"""What each operation does, who may call it and what it refuses: the OpenAPI description of every operation that
does not carry one at its route (a contract test checks that none is missing)."""

from __future__ import annotations

_COMMAND = (" Only the course's home clinic (its key) sends it; a refusal that breaks a course rule is 409 listing "
            "every rule broken (I1-I11). Send an `Idempotency-Key` to retry safely.")

DESCRIPTIONS: dict[str, str] = {
    "live": "200 while the process runs. No key needed.",
    "ready": "200 when PostgreSQL answers, NATS is connected and some process keeps the course index; 503 with the "
             "failing check otherwise. Load balancers route on it. No key needed.",
    "deliveryHealth": "Whether events reach NATS and the notifier consumes them: the relay's position against the "
                      "event log (events behind, seconds the oldest has waited) and seconds since the notifier's last "
                      "heartbeat. 503 when either is stuck past KACT_RELAY_MAX_LAG / KACT_NOTIFIER_MAX_SILENCE. "
                      "No key needed.",
    "listProblemTypes": "An HTML index of every problem `type`. No key needed.",
    "getRules": "The clinical rules I1-I11 as an HTML page, each with its setting, reason and the problem types that name it. No key needed.",
    "getProblemType": "The page a problem's `type` resolves to: what it means, the rule it names, what to do. "
                      "No key needed.",
    "createClinic": "The operator onboards a clinic with its IANA time zone. The response holds the clinic's first "
                    "API key, shown only here.",
    "createClinician": "The operator or the clinic adds a therapist or a prescriber. A prescriber gets an API key of "
                       "its own (to decide dose approvals), shown only in this response.",
    "listClinicKeys": "The operator or the clinic lists the clinic's keys: id, label, when created and by whom, last "
                      "use (to within about a minute), revocation. Never a secret.",
    "createRoom": "The operator or the clinic adds a room (a medicine room hosts monitored sessions).",
    "listClinicWebhooks": "The operator or the clinic lists the clinic's active webhooks, without their secrets.",
    "disableClinicWebhook": "The operator or the clinic disables a webhook; its pending deliveries are marked failed.",
    "listCourses": "The courses this principal may see (a clinic: its own; the operator: all), newest first (ties "
                   "by id), `limit` a page (default 50, at most 200); filter by `status`, `phase`, `clinician_id` "
                   "(a booked session with that clinician) and the start of the next booked session "
                   "(`next_session_from`, `next_session_before`). Follow `next_cursor` (pass it as `cursor`; null "
                   "on the last page): a walk sees every course once, however many are opened meanwhile. `page` "
                   "numbers still work (each answer without a cursor carries `next_page`) but shift as courses "
                   "open. A projection that shows every command answered before the read (it waits up to 2 s for "
                   "the index, else 503). Every read is logged.",
    "openCourse": "A clinic opens a couple's course: the dosing model (`taking_turns` or `together`), pseudonymous "
                  "references for partners a and b, and protocol settings within each rule's bounds (defaults from "
                  "the clinical rules). The course is an encrypted event stream from here on.",
    "getCourse": "The course as it stands, or as it stood at `as_of` (a version, or an instant: the events recorded by "
                 "then, replayed from the event store): phase, milestones, sessions, dose approvals, missed "
                 "windows and the actions allowed next. Another clinic's course is 404. Every read is logged.",
    "completeCourse": "Completes the course once its last medicine session is Integrated (I3) and no session is still "
                      "booked." + _COMMAND,
    "discontinueCourse": "Ends the course at any point, with a reason." + _COMMAND,
    "requestDoseApproval": "Asks a prescriber to approve one partner's dose for one medicine session (I6): the "
                           "prescriber is notified (webhook and pending list), reminded, then the home clinic is "
                           "alerted if it stays undecided." + _COMMAND,
    "exportCourse": "The operator's audit export of a course, in one of three formats (`format`): `ndjson` "
                    "(`application/x-ndjson`), one line per event as `listCourseEvents` shows it (`time`: when "
                    "recorded; `occurred_at`: when it happened; `actor`; `data`) with `course_id` and `chain`, the "
                    "event's link in the course's hash chain (null while none is kept); `html` (`text/html`), a "
                    "timeline a person reads: the course, its sessions and every event with who recorded it, in a "
                    "sentence and in full, everything escaped; `fhir` (`application/fhir+json`), a FHIR R4 (4.0.1) "
                    "collection Bundle validated with the R4 models: the partners as Patients known only by their "
                    "pseudonymous references, an Appointment per session (booked, fulfilled, noshow, cancelled), an "
                    "Encounter per session held, a MedicationAdministration per dose (ketamine, mg), and per vitals "
                    "reading a blood-pressure panel (LOINC 85354-9: 8480-6, 8462-4 in mm[Hg]) and a heart-rate "
                    "(8867-4, /min) Observation; clinicians and rooms by id only. Only the operator exports: to any "
                    "other key the course does not exist (404). Every export is logged (`export_course`).",
    "listCourseEvents": "The course's audit history: every event with its type, time, version, acting principal and "
                        "data, and its `actor`: role and id, clinic, the clinician it names, the request id and trace "
                        "id of the command that recorded it, and the reason it gave. Only the home clinic and the "
                        "operator see it.",
    "acknowledgeMissedWindow": "A clinician of the home clinic (`clinician_id`) acknowledges a missed integration "
                               "window (I4) with a reason, which unblocks the next dose. A window that closed by "
                               "the course's own times (`X-Kact-Now` in simulation) is acknowledged even if the "
                               "deadline watcher has not recorded it yet: it is recorded missed first."
                               + _COMMAND,
    "recordScreening": "Records one partner's screening, eligible or ineligible, by a clinician of the clinic; an "
                       "ineligible partner discontinues the course." + _COMMAND,
    "bookSession": "Books an assessment, preparation, medicine or integration session: times (2000-2099, with "
                   "offsets), partners, the hosting clinic (the home clinic or a partner under an agreed partnership, "
                   "I11), room and clinicians of the host. Checked against every rule at once: phase order, the "
                   "medicine session count and interval, the integration window, no double booking (I10). A "
                   "medicine session at a partner clinic asks the host to confirm. It lies within the host's opening "
                   "hours, off its closures and within its clinicians' working hours (local time in the host's zone; "
                   "none set: always), unless `hours_override_reason` says why not: the reason is kept with the "
                   "session." + _COMMAND,
    "cancelSession": "Cancels a booked session before it starts, classified for reporting: `cancelled_by`, on whose "
                     "behalf (couple, partner_a, partner_b, home_clinic, host_clinic, clinician, prescriber; default "
                     "home_clinic) and `reason_code`, why (illness, scheduling_conflict, clinical: a contraindication "
                     "or not fit, host_unavailable, clinician_unavailable, weather_or_travel, no_longer_wanted, "
                     "rebooked, other), with an optional free-text `note` (required for `other`). The note stays "
                     "with the course (encrypted at rest, never on the bus); the classification is published "
                     "(`kact.course.session.cancelled.v2`) and shown in the course. An unknown code is 422 naming the "
                     "allowed values. Older clients may still send only `reason`: it becomes the note, with "
                     "`reason_code` other and `cancelled_by` home_clinic unless given (`note` and `reason` together "
                     "are refused). The home clinic cancels on anyone's behalf, also the hosting clinic's." + _COMMAND,
    "holdSlot": "Holds a slot for the course for a few minutes (the hosting clinic's `hold_minutes`, default 10; "
                "`minutes` asks for fewer) while the couple decides. The slot is named as a booking names it and "
                "judged as a booking there would be: every course rule, the host's hours, its booking rules "
                "(buffers, notice, horizon, limits) and its calendars, holds included. Until it expires nobody else "
                "books or holds the clinicians' or room's time. At a partner clinic, the host's "
                "`max_partner_holds` caps how many slots the home clinic holds there at once (`holds-cap`). An "
                "expired hold frees its slot at once; `hold.expired` then tells the home clinic." + _COMMAND,
    "bookHold": "Books a held slot before it expires: the session takes the hold's place in every calendar, in one "
                "transaction, judged again as any booking (the course or the host's rules may have changed). An "
                "expired hold is refused (`hold-expired`)." + _COMMAND,
    "releaseHold": "Releases a held slot before it expires: its time is free at once." + _COMMAND,
    "recordDischarge": "Records the discharge of a medicine session that was recorded while monitoring continued "
                       "(`monitoring_continues` in its record), with the readings taken since: at least one "
                       "acceptable at discharge, the monitoring minimum after each partner's last administration "
                       "(I8). The session is then Dosed; until then no integration session is held and no next "
                       "dose given. Sent by the clinic hosting the session." + _COMMAND,
    "withdrawDoseApproval": "Takes back a dose approval request its prescriber has not decided yet (the session "
                            "moved, or the dose is no longer wanted), with a reason: it leaves the prescriber's "
                            "queue, the prescriber is told, and the partner's dose may be requested again."
                            + _COMMAND,
    "reportAdverseEvent": "Reports an adverse event of a medicine session on its own, while it runs or after the "
                          "couple left (never dated before the session): the home clinic or the clinic hosting the "
                          "session, naming one of its clinicians. The prescribers of the session's approvals and "
                          "the home clinic are alerted at once; the note stays encrypted in the course."
                          + _COMMAND,
    "confirmSession": "The clinic hosting a partner-hosted medicine session confirms or declines it (a reason when "
                      "declining), with its own key; it sees only the sessions it hosts. A rescheduled session asks "
                      "again.",
    "recordSession": "The clinic hosting a session records what happened in it, with its own key, naming the clinician of its own who records it: missed (with a reason), or held (a partner-hosted medicine session only once the host confirmed it, I11); a medicine session held records its "
                     "doses (within their approvals, I6, I7), vitals before, about 40 minutes after and at discharge, "
                     "adverse events and the discharge time (I8, I9), all within the session (its start to its recorded "
                     "`ended_at`, else its discharge, give or take the protocol's tolerance). Adverse events alert "
                     "the prescriber and the home clinic at once. A medicine session that took place without a dose "
                     "gives `not_dosed_reason` (its vitals kept): it is not Dosed, does not count against the "
                     "protocol's medicine sessions, and its approved doses stay usable at the next medicine session "
                     "at the same clinic until they expire. With `monitoring_continues`, the discharge is recorded "
                     "later (recordDischarge)." + _COMMAND,
    "rescheduleSession": "Moves a booked session (its room and clinicians may change too), checked like a booking; "
                         "its own old time never counts as a clash; the host's hours apply as to a booking, with the "
                         "same `hours_override_reason`." + _COMMAND,
    "listHostedSessions": "The sessions a clinic hosts for other clinics' courses, by start time (default: the next "
                          "seven days; at most 62): scheduling facts, room and clinicians, and for a medicine "
                          "session who is dosed and the dose approved so far. Nothing of the couple (no partner "
                          "references, notes or records). The clinic itself or the operator.",
    "listSharedSessions": "The booked sessions this clinic hosts for a partner's courses, and the partner for its "
                          "courses: what to rebook elsewhere when the partnership ends.",
    "listDeadLetters": "The operator lists messages the notifier could not process after its retries, newest first.",
    "redriveDeadLetter": "The operator asks the notifier to process a dead letter again (202); 409 once processed.",
    "listDeliveries": "Webhook deliveries, newest first, filtered by status: a clinic sees its own and its "
                      "prescribers', a prescriber its own, the operator all.",
    "getDelivery": "One webhook delivery with every attempt: time, status code or error, duration.",
    "redriveDelivery": "Sends a failed delivery again with a fresh count of attempts (operator or the owning clinic); "
                       "409 if it is not failed or its webhook is disabled.",
    "listDoseApprovals": "A prescriber's queue of dose approvals addressed to them (the operator: all), by status. "
                         "Clinics are refused (403).",
    "decideDoseApproval": "The prescriber an approval is addressed to approves (up to a dose, valid for the "
                          "protocol's days) or declines it, with a reason. Anyone else gets 404.",
    "overrideVitalsLimit": "On the day of the session, the prescriber of an approved dose lets one pre-dose reading "
                           "above the clinic's numeric limit stand (I9): the reading's time (`reading_at`), a "
                           "ceiling (a reading above it is still refused) and a reason. Only for a reading of a "
                           "medicine session of that dose still to be recorded, taken within it, and given before "
                           "it ended. Anyone but that prescriber gets 404; a refusal is 409 naming I9.",
    "readFeed": "Everything the notifier addressed to the caller after a position, in order and without gaps: the "
                "same items its webhooks carry. A receiver that was down asks for `?after=<last position seen>`. "
                "The operator names a feed with `?recipient=`.",
    "consentToPartnership": "A clinic consents to partner with another for the kinds of session it names (default: "
                            "medicine only), or sends it again to change them. The partnership holds once both "
                            "consented, and covers the kinds both named: only those sessions may one host for the "
                            "other (I11). Answers the partnership as it stands, with its history.",
    "endPartnership": "Either clinic ends its partnership with the clinic in the path, with a reason: from then on "
                      "neither hosts new sessions for the other (nor moves them, I11); sessions already booked stay "
                      "booked. Ending an ended partnership changes nothing; a new consent proposes it anew. 404 if "
                      "the two never had one.",
    "listPartnerships": "The operator or the clinic lists its partnerships: state (proposed, agreed, ended), the kinds "
                        "both agreed, each side's consent in force and every consent, change and end (who, when, "
                        "why), oldest first.",
    "getClinic": "The operator or the clinic reads the clinic: name, IANA time zone, opening hours and closures in "
                 "force. Never a key; to another clinic it does not exist (404).",
    "listClinicians": "The operator or the clinic lists its therapists and prescribers with their working hours in "
                      "force. Never a key.",
    "listRooms": "The operator or the clinic lists its rooms.",
    "getOpeningHours": "The operator or the clinic reads its weekly opening hours in force (null: always open) and "
                       "every setting of them (who, when), the current one last.",
    "setOpeningHours": "The operator or the clinic sets its weekly opening hours, local wall-clock time in its zone "
                       "(several intervals a day; a weekday without one is closed; past midnight: until 24:00, then "
                       "from 00:00 the next day; null: always open). Kept with the earlier settings. New bookings and "
                       "moves are checked against them; booked sessions stay.",
    "listFreeSlots": "The times from `from` to `to` (local dates in the clinic's zone, at most 31 days) at which a "
                     "session of `kind` lasting `duration_minutes` could be booked at the clinic, each with the "
                     "clinicians and room a booking would take (one per `require`). Start times lie on a grid of "
                     "`step_minutes` from each local midnight, so they stay at the same local times across a "
                     "daylight-saving change, and are shown in the clinic's zone with their UTC offset. Each is "
                     "judged as a booking would be: opening hours, closures, working hours, the clinic's booking "
                     "rules (buffers, notice, horizon, limits, its daily cap on partner-hosted medicine sessions) "
                     "and every calendar, open holds included. The clinic and the operator ask; a partner clinic "
                     "asks when their agreed partnership covers the kind (it sees free times only); to anyone else "
                     "the clinic does not exist (404).",
    "listNextSlots": "The next slots in which the course's rules allow a session of `kind`, at the home clinic or "
                     "`clinic_id` (a partner under an agreed partnership): the phase order, the integration window "
                     "(by default the search ends with it), the interval and count of medicine sessions, the "
                     "couple's own calendar across courses, hosting, and every calendar and rule of the host "
                     "(hours, closures, booking rules, holds). Each slot names the rules it was judged by "
                     "(`checked`); booked as offered (its clinicians and room), it is accepted unless something "
                     "changed in between. Only the home clinic asks.",
    "planCourse": "Proposes every session the course still needs to complete under its protocol: the joint "
                  "assessment, the preparation minimum, then each medicine session (`medicine_sessions` in all, "
                  "default the protocol's maximum) with its integration minimum, in the order the rules let them "
                  "be held, each as early as every calendar and the preferences allow (weekdays, local start "
                  "times, where medicine sessions are hosted, which resources each kind needs, at most one session "
                  "a day by default). Every item is judged beside the ones before it, so the plan, booked and "
                  "held in order, completes the course. Nothing is booked: hold the items (`plan/hold`) or book "
                  "them (`plan/book`). 409 `no-plan` names the first session that fits nowhere within 120 days."
                  + " Only the course's home clinic asks.",
    "holdPlan": "Holds every item of a plan in one call, in order, each judged beside the holds before it as the "
                "booking it would become: all are held, or none (409 naming every rule the first refused item "
                "breaks)." + _COMMAND,
    "bookPlan": "Books every item of a plan (`items`), or every hold of a held plan (`hold_ids`), in order and in "
                "one transaction: all or none." + _COMMAND,
    "getBookingRules": "The operator or the clinic reads its booking rules in force and every setting of them (who, "
                       "when), the current one last; never set: the defaults, which restrict nothing but holds.",
    "setBookingRules": "The operator or the clinic sets its booking rules: buffers before and after each kind of "
                       "session (for its clinicians and rooms), minimum notice and booking horizon, each "
                       "clinician's daily and weekly session limits (local days and weeks, Monday first), a daily "
                       "cap on medicine sessions it hosts for partner clinics, how long holds last and how many a "
                       "partner clinic may keep open. Every session booked, moved or held at the clinic from then "
                       "on is judged by them, each refusal naming its rule; sessions booked stay.",
    "listClosures": "The operator or the clinic lists the closures in force and every closure added or lifted.",
    "addClosure": "The operator or the clinic closes the clinic from one local date to another (both included), with "
                  "a reason; no session is booked or moved onto those days without `hours_override_reason`.",
    "liftClosure": "The operator or the clinic lifts a closure (204); the history keeps it. Lifting it again is a "
                   "no-op.",
    "getWorkingHours": "The operator or the clinician's clinic reads the clinician's weekly working hours in force "
                       "(null: always available) and every setting of them.",
    "setWorkingHours": "The operator or the clinician's clinic sets the clinician's weekly working hours, local time "
                       "in the clinic's zone (as opening hours; null: always available). Kept with earlier settings.",
    "listPrescriberKeys": "The prescriber's keys (the operator, its clinic or the prescriber), never their secrets.",
    "listPrescriberWebhooks": "The prescriber's active webhooks (the operator, its clinic or the prescriber), "
                              "without their secrets.",
    "disablePrescriberWebhook": "Disables a webhook of the prescriber; its pending deliveries are marked failed.",
    "createClinicianCalendarFeed": "The operator or the clinician's clinic creates a calendar feed of the "
                                   "clinician's sessions, across every course and clinic, with an optional label. "
                                   "The answer's `url` (holding a 256-bit token, stored only as a hash) is shown "
                                   "only here; a calendar client subscribes to it. At most 10 feeds not revoked "
                                   "per clinician (409 too-many-feeds). To anyone else the clinician does not "
                                   "exist (404).",
    "listClinicianCalendarFeeds": "The operator or the clinician's clinic lists the clinician's calendar feeds: "
                                  "id, label, when created and by whom, revocation. Never a URL or token.",
    "revokeClinicianCalendarFeed": "The operator or the clinician's clinic revokes one of the clinician's calendar "
                                   "feeds (204): its URL answers 404 from that moment, in every API process. "
                                   "Revoking it again is a no-op.",
    "createRoomCalendarFeed": "The operator or the clinic creates a calendar feed of one of its rooms' sessions, "
                              "across every course, with an optional label. The answer's `url` (holding a 256-bit "
                              "token, stored only as a hash) is shown only here. At most 10 feeds not revoked per "
                              "room. To anyone else the room does not exist (404).",
    "listRoomCalendarFeeds": "The operator or the clinic lists the room's calendar feeds: id, label, when created "
                             "and by whom, revocation. Never a URL or token.",
    "revokeRoomCalendarFeed": "The operator or the clinic revokes one of the room's calendar feeds (204): its URL "
                              "answers 404 from that moment, in every API process. Revoking it again is a no-op.",
    "getCalendarFeed": "The feed as iCalendar (RFC 5545, `text/calendar`), for Google Calendar, Outlook and other "
                       "clients to subscribe to: one event per session the clinician or room holds, in every course "
                       "and clinic, that ended at most 30 days ago or is still to come. Each has a stable UID "
                       "(`<session id>@kact`), its times in UTC, its kind (SUMMARY), the hosting clinic and room "
                       "(LOCATION) and its course id (DESCRIPTION); a partner-hosted medicine session not yet "
                       "confirmed by its host is TENTATIVE, one its host declined CANCELLED; a cancelled session "
                       "leaves the feed. Never a partner, note, dose or reason. No key: the token in the URL is the "
                       "credential (404 once revoked, or if it never existed); each feed is limited to a burst of "
                       "10 fetches, then one every 5 seconds.",
    "getClinicianCalendar": "The clinician's sessions in one local day (`view=day`) or ISO week (`view=week`, "
                            "Monday to Monday; the default) of its clinic's time zone holding `date` (default: "
                            "today there), each that overlaps it, by start: kind, times in the clinic's zone with "
                            "their UTC offset, hosting clinic, room, clinicians, status and the host's "
                            "confirmation. `hours` is the period's elapsed length (167 or 169 for a week across a "
                            "daylight-saving change). Cancelled sessions, and a discontinued course's, only with "
                            "`include_cancelled=true`. Never a partner or note. The operator or the clinician's "
                            "clinic; to anyone else the clinician does not exist (404). Shows every command "
                            "answered before the read; every read is logged.",
    "getRoomCalendar": "The room's sessions in one local day or ISO week of its clinic's time zone, as "
                       "getClinicianCalendar shows a clinician's. The operator or the room's clinic (the one in the "
                       "path); to anyone else the room does not exist (404).",
    "listRelayDeadLetters": "The operator lists stored events the relay could not publish (too large, or refused by "
                            "the stream): position, course, topic, error. The events stay in the event store and the "
                            "course's history; everything after them was published.",
    "createSignInLink": "A link that signs the person at a prescriber's (or the operator's) browser in to their page "
                        "once: for a prescriber the pending dose approvals, to approve up to a dose or decline with a "
                        "reason; for the operator the audit page. Asked for with the principal's own key when a "
                        "`dose_approval_request` notice arrives, and handed to the person (mail, chat, an app). The "
                        "link is shown only in this response, lasts 15 minutes, signs in once (opening it shows a "
                        "button; the click uses it), and the session it opens ends when the key that asked for it is "
                        "revoked. A clinic's key: 403.",
    "listAccessLog": "The operator reads the access log: every read of course data through the API, the calendar "
                     "feeds and the webhooks delivered, newest first (by time, then id). Each row names the "
                     "principal, the action (`read_course`, `replay_course` for `?as_of=`, `read_history`, "
                     "`list_courses`, `read_feed`, ...), the course (a row per course a read showed; none for a list "
                     "that showed none), the outcome (`ok`; `denied`: a principal refused, 404 or 403, e.g. a clinic "
                     "asking for another clinic's course; `failed`: any other error) and the request id. Filter by "
                     "`course_id`, `principal`, `outcome` and a time range (`from` included, `to` not); follow "
                     "`next_cursor`. The log is append-only: the services' database role cannot change or delete "
                     "its rows. Anyone but the operator gets 404.",
}
