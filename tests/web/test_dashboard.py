"""The dashboard shows every gateway's binds, as a real worker publishes them, and says so plainly
when none is running."""

from __future__ import annotations

from tests.web.conftest import sign_in


def test_no_gateway_is_an_alarm_not_a_blank(client, people, db):
    sign_in(client, people("ana", "composer"), db)
    page = client.get("/").get_data(as_text=True)
    assert "No hay ninguna pasarela en marcha: no se puede enviar nada" in page  # the operator's language


def test_every_role_sees_the_binds_of_a_running_worker(worker_process, app, people, db):
    _cluster, worker = worker_process()
    for role in ("composer", "approver", "admin", "auditor"):
        client = app.test_client()
        sign_in(client, people(f"dash-{role}", role), db)
        response = client.get("/")
        page = response.get_data(as_text=True)
        assert response.status_code == 200, (role, page[:500])
        assert "alpha-1" in page and "beta-2" in page, role  # each bind, as the worker's pool names it
        assert "No hay ninguna pasarela en marcha" not in page and "estado de los enlaces desconocido" not in page
    assert worker.poll() is None


def test_a_refused_bind_shows_with_the_carriers_answer(worker_process, simulator, app, people, db):
    simulator.set_fault("alpha", "refuse_bind", mode="nack", status=0x0D)  # ESME_RBINDFAIL, until cleared
    worker_process()
    client = app.test_client()
    sign_in(client, people("ana", "composer"), db)
    page = client.get("/").get_data(as_text=True)
    assert page.count('<tr class="flash error"><td>alpha</td>') == 2  # both alpha binds down, in red
    assert "ESME_RBINDFAIL" in page or "0x0D" in page
    assert page.count("<td>beta</td><td>beta-") == 2


def test_a_carrier_degraded_by_its_receipts_is_shown_with_the_reason(client, people, db):
    from sqlalchemy import text

    db.execute(text("INSERT INTO carrier_health (carrier, degraded, reason) "
                    "VALUES ('beta', true, '45% of receipts failed (others 2%)'), ('alpha', false, '')"))
    sign_in(client, people("ana", "composer"), db)
    page = client.get("/").get_data(as_text=True)
    assert "DEGRADADO según sus recibos, recibe menos tráfico: 45% de los recibos fallaron (los demás, 2%)" in page
    assert page.count("degraded-carrier") == 1
