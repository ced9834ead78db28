/*
 * src/http/gw_report.c -- the JSON form of an isolation report.
 *
 * One form for every reader: the daemon's GET /v1/leases/{token}/report,
 * the gateway's /_fleet/status and the tests.  Field names are those of
 * fl_report, so the JSON, the history detail ("concurrent_foreign_requests=0
 * ...") and the C struct say the same thing in the same words.
 */
#include "serve.h"

json_t *srv_report_json(const fl_report *r)
{
    json_t *o = json_object();
    json_t *w = json_array();
    if (!o || !w) {
        json_decref(o);
        json_decref(w);
        return NULL;
    }
    json_object_set_new(o, "provider", cli_jstr(r->provider));
    json_object_set_new(o, "fence", json_integer(r->fence));
    json_object_set_new(o, "gateways", json_integer(r->gateways));
    json_object_set_new(o, "final", json_boolean(r->final));
    json_object_set_new(o, "concurrent_foreign_requests",
                        json_integer(r->concurrent_foreign_requests));
    json_object_set_new(o, "foreign_in_flight_at_grant",
                        json_integer(r->foreign_in_flight_at_grant));
    json_object_set_new(o, "foreign_refused", json_integer(r->foreign_refused));
    json_object_set_new(o, "foreign_cut_off", json_integer(r->foreign_cut_off));
    json_object_set_new(o, "holder_requests", json_integer(r->holder_requests));
    for (size_t i = 0; i < r->n_writers && i < FL_REPORT_WRITERS; i++) {
        json_t *e = json_object();
        if (!e)
            continue;
        json_object_set_new(e, "writer", cli_jstr(r->writers[i].writer));
        json_object_set_new(e, "refused", json_integer(r->writers[i].refused));
        json_array_append_new(w, e);
    }
    json_object_set_new(o, "refused_by_writer", w);
    if (r->updated_at_ms > 0) {
        cli_jset_time(o, "updated_at", r->updated_at_ms);
        json_object_set_new(o, "updated_at_ms", json_integer(r->updated_at_ms));
    } else {
        json_object_set_new(o, "updated_at", json_null());
        json_object_set_new(o, "updated_at_ms", json_null());
    }
    return o;
}
