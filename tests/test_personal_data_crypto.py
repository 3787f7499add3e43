"""Personal data encrypted at rest (issue 26): ID numbers and phone numbers are SM4-GCM
ciphertexts in the database, found through their HMAC-SM3 blind index, and a key
rotation while others write loses and duplicates nothing."""
import os
import shutil
import subprocess
import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from app.extensions import db
from app.models import Person, Unit
from app.models.crypto import KeyFileError, KeyRing, TamperedValue, count_not_active, encrypted_columns
from app.services import accounts
from app.services.demo import resident_id
from app.services.validators import mask_id_number, mask_phone
from tests.conftest import IS_PG
from tests.test_import import store

import datetime


def _ring(app):
    return app.extensions["data_keys"]


def _number(name):
    return db.session.execute(select(Person.id_number).where(Person.name == name)).scalar_one()


def test_round_trip_fresh_nonce_and_column_binding(tmp_path):
    ring = KeyRing(KeyRing.create(str(tmp_path / "k.key")))
    a = ring.encrypt("320102198805120115", "person.id_number")
    b = ring.encrypt("320102198805120115", "person.id_number")
    assert a != b and a.startswith("k1$") and "320102198805120115" not in a
    assert ring.decrypt(a, "person.id_number") == ring.decrypt(b, "person.id_number") == "320102198805120115"
    # The same blind index for the same number, another for another number or column.
    assert ring.blind_index("320102198805120115", "person.id_number") == ring.blind_index(
        "320102198805120115", "person.id_number")
    assert ring.blind_index("320102198805120115", "person.id_number") != ring.blind_index(
        "320102198805120116", "person.id_number")
    # A ciphertext moved to another column is refused (the column is its associated data).
    with pytest.raises(TamperedValue):
        ring.decrypt(a, "person.phone")
    # Another key file cannot read it.
    other = KeyRing(KeyRing.create(str(tmp_path / "other.key")))
    with pytest.raises(TamperedValue):
        other.decrypt(a, "person.id_number")


def test_a_changed_ciphertext_is_refused_not_misread(app, ctx):
    pid, stored = db.session.execute(text("SELECT id, id_number FROM person ORDER BY id LIMIT 1")).one()
    kid, _, body = stored.partition("$")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    db.session.execute(text("UPDATE person SET id_number = :v WHERE id = :i"), {"v": f"{kid}${flipped}", "i": pid})
    db.session.commit()
    db.session.expire_all()
    with pytest.raises(TamperedValue):
        db.session.get(Person, pid).id_number
    db.session.rollback()
    # A value of a key the file does not have is named, not guessed.
    db.session.execute(text("UPDATE person SET id_number = :v WHERE id = :i"), {"v": "k99$" + body, "i": pid})
    db.session.commit()
    db.session.expire_all()
    with pytest.raises(KeyFileError):
        db.session.execute(select(Person.id_number).where(Person.id == pid)).scalar()
    db.session.rollback()


def test_full_id_number_finds_the_person_in_the_grids(app, ctx, login_as):
    number = _number("张三")
    client = login_as("clerk_a")
    html = client.get(f"/personview/list/?_flt_0_id_number={number}").get_data(as_text=True)
    assert "张三" in html and "李四" not in html and "王五" not in html
    # Typed into the hour records' person filter, the number finds the person's records.
    html = client.get(f"/hourrecordview/list/?_flt_0_person={number}").get_data(as_text=True)
    assert "张三" in html and "李四" not in html
    # A part of the number finds nothing: the index is of whole numbers only.
    html = client.get(f"/personview/list/?_flt_0_id_number={number[:10]}").get_data(as_text=True)
    assert "张三" not in html


def test_the_national_api_gives_the_full_number(app, client):
    from tests.test_national import _token

    with app.app_context():
        number = _number("张三")
        pid = db.session.execute(select(Person.id).where(Person.name == "张三")).scalar()
        from app.models import HourRecord, Status

        rid = db.session.execute(select(HourRecord.id).where(HourRecord.person_id == pid,
                                                             HourRecord.status == Status.APPROVED)).scalars().first()
    auth = _token(client, "bureau_nj")
    body = client.get(f"/api/v1/national_record/{rid}", headers=auth).get_json()
    assert body["id_number"] == number and body["name"] == "张三"


def test_import_finds_known_persons_and_creates_new_ones_once(app):
    store(app, "unknown_persons_unit.xlsx")
    with app.app_context():
        created = db.session.execute(select(Person).where(Person.name.in_(["赵新", "钱进"]))).scalars().all()
        numbers = {p.name: p.id_number for p in created}
        assert len(numbers) == 2
        for name, number in numbers.items():
            assert db.session.execute(select(Person.name).where(Person.id_number == number)).scalar_one() == name
        persons = db.session.execute(select(func.count(Person.id))).scalar()
    res = store(app, "unknown_persons_unit.xlsx")
    assert res.rows_stored == 0
    with app.app_context():
        assert db.session.execute(select(func.count(Person.id))).scalar() == persons


def test_registration_by_an_imported_number_links_and_a_second_one_is_refused(app, ctx):
    from app.services.errors import ValidationFailed

    number = resident_id("320102", datetime.date(1991, 3, 4), 77)
    unit = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
    accounts.register_person(name="周九", id_number=number, phone="13800001111", username="zhoujiu",
                             password="Zj#2026-long-pass", credit_code=unit.credit_code)
    person = db.session.execute(select(Person).where(Person.id_number == number)).scalar_one()
    assert (person.name, person.phone) == ("周九", "13800001111")
    with pytest.raises(ValidationFailed):
        accounts.register_person(name="周九", id_number=number, phone="13800001111", username="zhoujiu2",
                                 password="Zj#2026-long-pass", credit_code=unit.credit_code)


def _edit_a_person_and_export_by_number(app, login_as):
    """An administrator changes 张三's ID number and mobile (the form), then
    exports the hour records filtered by the new number as a job (its filter
    replayed by the job).  Returns (old number, old phone, new number, new phone)."""
    import io
    import json
    import time

    from openpyxl import load_workbook

    from app.models import HourRecord, Job
    from tests.conftest import post

    with app.app_context():
        person = db.session.execute(select(Person).where(Person.name == "张三")).scalar_one()
        person.phone = "13655667788"
        db.session.commit()
        pid, unit_id, old_number, old_phone = person.id, person.unit_id, person.id_number, person.phone
        expected = db.session.execute(select(func.count(HourRecord.id)).where(HourRecord.person_id == pid)).scalar()
        db.session.remove()
    new_number, new_phone = resident_id("320104", datetime.date(1985, 3, 4), 61), "13766554433"
    admin = login_as("admin")
    resp = post(admin, f"/personview/edit/{pid}", {
        "name": "张三", "id_type": "RESIDENT", "id_number": new_number, "unit": str(unit_id),
        "title": "工程师", "specialty": "计算机", "phone": new_phone})
    assert resp.status_code == 302, resp.get_data(as_text=True)[-1500:]
    with app.app_context():
        assert db.session.get(Person, pid).id_number == new_number
        db.session.remove()
    app.config["EXPORT_INLINE_MAX_ROWS"] = 0
    try:
        resp = admin.get(f"/hourrecordview/export/?_flt_0_person={new_number}", follow_redirects=True)
    finally:
        app.config.pop("EXPORT_INLINE_MAX_ROWS")
    job_id = int(resp.request.path.rstrip("/").split("/")[-1])
    for _ in range(600):
        state = admin.get(f"/imports/job/{job_id}/status").get_json()["state"]
        if state in ("done", "failed"):
            break
        time.sleep(0.1)
    assert state == "done"
    rows = list(load_workbook(io.BytesIO(admin.get(f"/imports/job/{job_id}/download").data)).active
                .iter_rows(values_only=True))[1:]
    assert expected >= 1 and len(rows) == expected  # the job replayed the number's filter
    with app.app_context():
        params = json.loads(db.session.get(Job, job_id).params)
        assert new_number not in json.dumps(params) and "_flt_0_person=" in params["query_shown"]
    return old_number, old_phone, new_number, new_phone


def _raw_bytes(app):
    """Every byte of the database as stored: the SQLite file, or a pg_dump."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if url.get_backend_name() == "sqlite":
        with open(url.database, "rb") as fh:
            data = fh.read()
        wal = url.database + "-wal"
        if os.path.exists(wal):
            data += open(wal, "rb").read()
        return data
    pg_dump = shutil.which("pg_dump") or "/usr/lib/postgresql/15/bin/pg_dump"
    env = dict(os.environ, PGPASSWORD=url.password or "")
    return subprocess.run(
        [pg_dump, "-h", url.host or "localhost", "-p", str(url.port or 5432), "-U", url.username, "-d", url.database],
        check=True, capture_output=True, env=env).stdout


def test_the_raw_database_holds_no_id_or_phone_number_in_clear(app, login_as):
    with app.app_context():
        unit = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
        accounts.register_person(name="吴十", id_number=resident_id("320102", datetime.date(1992, 6, 7), 88),
                                 phone="13912345678", username="", password="Ws#2026-long-pass",
                                 credit_code=unit.credit_code)
    store(app, "unknown_persons_unit.xlsx")
    old_number, old_phone, new_number, new_phone = _edit_a_person_and_export_by_number(app, login_as)
    with app.app_context():
        numbers = [n for (n,) in db.session.execute(select(Person.id_number))]
        phones = [p for (p,) in db.session.execute(select(Person.phone).where(Person.phone.is_not(None)))]
        phones += [p for (p,) in db.session.execute(select(Unit.contact_phone).where(Unit.contact_phone.is_not(None)))]
        # The edit's and the export's entries and the export job are there, numbers masked.
        details = "\n".join(d for (d,) in db.session.execute(text("SELECT detail FROM audit_log")) if d)
        params = "\n".join(p for (p,) in db.session.execute(text("SELECT params FROM ce_job")) if p)
    assert len(numbers) > 60 and "13912345678" in phones and any(p.startswith("025-") for p in phones)
    numbers += [old_number]
    phones += [old_phone]
    assert new_number in numbers and new_phone in phones
    assert mask_id_number(new_number) in details and mask_id_number(old_number) in details
    assert mask_phone(new_phone) in details and mask_phone(old_phone) in details
    assert "query_sealed" in params and mask_id_number(new_number) in params
    assert [v for v in numbers + phones if v in details or v in params] == []
    raw = _raw_bytes(app)
    assert len(raw) > 100_000
    seen = [v for v in numbers + phones if v.encode() in raw]
    assert seen == []
    # The check can fail: the plaintext of a column not encrypted is found.
    with app.app_context():
        unit_code = db.session.execute(select(Unit.credit_code).limit(1)).scalar()
    assert unit_code.encode() in raw


def _insert_persons(app, prefix, count, made, errors):
    try:
        with app.app_context():
            unit = db.session.execute(select(Unit.id).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
            for i in range(count):
                number = resident_id("320102", datetime.date(1975, 1, 1) + datetime.timedelta(days=i), prefix)
                db.session.add(Person(name=f"并发{prefix}-{i}", id_number=number, phone=f"139{prefix:03d}{i:05d}",
                                      unit_id=unit))
                db.session.commit()
                made.append((number, f"139{prefix:03d}{i:05d}"))
                # and an existing person's phone changes meanwhile
                p = db.session.execute(select(Person).where(Person.name == "张三")).scalar_one()
                p.phone = f"138{prefix:03d}{i:05d}"
                db.session.commit()
    except Exception as exc:  # reported by the test
        errors.append(exc)
        raise


def test_rotation_while_others_write_loses_and_duplicates_nothing(app, tmp_path, monkeypatch):
    from app.services import data_keys

    # A copy of the test key file, so that the rotation touches no other test's key.
    path = str(tmp_path / "rotate.key")
    shutil.copyfile(_ring(app).path, path)
    ring = KeyRing(path, reload_seconds=0.05)
    monkeypatch.setitem(app.extensions, "data_keys", ring)
    old = ring.active
    with app.app_context():
        before = {p.id: (p.id_number, p.phone) for p in db.session.execute(select(Person)).scalars()}
    made, errors = [], []
    writers = [threading.Thread(target=_insert_persons, args=(app, 900 + k, 25, made, errors)) for k in range(2)]
    for t in writers:
        t.start()
    with app.app_context():
        new, rewritten = data_keys.rotate(batch=7, settle_seconds=0.2, echo=lambda *_: None)
    for t in writers:
        t.join()
    assert errors == []
    assert new != old and old in ring.keys  # the old key stays: older backups need it
    assert rewritten >= len(before)
    with app.app_context():
        # Writers that finished after the last pass wrote with the new key already.
        with db.engine.connect() as conn:
            assert sum(count_not_active(conn, t, c, ring) for t, c, _k in encrypted_columns(db.metadata)) == 0
        after = {p.id: (p.id_number, p.phone) for p in db.session.execute(select(Person)).scalars()}
        assert len(after) == len(before) + 50
        for pid, (number, phone) in before.items():
            if after[pid][0] != number:
                pytest.fail(f"person {pid}: number changed")
        by_number = {}
        for pid, (number, phone) in after.items():
            by_number.setdefault(number, []).append(pid)
        assert all(len(v) == 1 for v in by_number.values())
        for number, phone in made:
            p = db.session.execute(select(Person).where(Person.id_number == number)).scalar_one()
            assert p.phone == phone
        zhang = db.session.execute(select(Person).where(Person.name == "张三")).scalar_one()
        assert zhang.phone.startswith("138") and zhang.phone.endswith("00024")
        stored = db.session.execute(text("SELECT id_number FROM person")).scalars().all()
        assert all(s.startswith(new + "$") for s in stored)


def test_keys_status_command_counts_values_per_key(app):
    result = app.test_cli_runner().invoke(args=["ce", "keys", "status"])
    assert result.exit_code == 0, result.output
    assert f"active: {_ring(app).active}" in result.output
    assert "person.id_number: " in result.output and "unit.contact_phone: " in result.output


def test_an_account_without_username_signs_in_with_its_number_stored_as_a_digest(app, client):
    from tests.conftest import login

    number = resident_id("320102", datetime.date(1993, 2, 3), 66)
    with app.app_context():
        unit = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
        user = accounts.register_person(name="郑一", id_number=number, phone="13700001234", username="",
                                        password="Zy#2026-long-pass", credit_code=unit.credit_code)
        stored = user.username
        assert stored.startswith("id-") and number not in stored and number not in user.email
    html = login(client, number, "Zy#2026-long-pass").get_data(as_text=True)
    assert "郑一" in html and "用户名或密码" not in html
    with app.app_context():
        from app.models import CEUser

        assert db.session.execute(select(CEUser.login_count).where(CEUser.username == stored)).scalar() == 1


def test_the_migration_converts_plaintext_rows_and_back(app):
    from flask_migrate import downgrade, upgrade

    from app.models import CEUser

    number = resident_id("320102", datetime.date(1994, 4, 5), 55)
    with app.app_context():
        unit = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
        accounts.register_person(name="冯二", id_number=number, phone="13600005678", username="",
                                 password="Fe#2026-long-pass", credit_code=unit.credit_code)
        before = {p.id: (p.id_number, p.phone) for p in db.session.execute(select(Person)).scalars()}
        units = {u.id: u.contact_phone for u in db.session.execute(select(Unit)).scalars()}
        db.session.remove()
        downgrade(revision="i27a0001")
        with db.engine.connect() as conn:
            plain = dict(conn.execute(text("SELECT id, id_number FROM person")).all())
            assert plain == {pid: v[0] for pid, v in before.items()}
            assert conn.execute(text("SELECT username FROM ab_user WHERE username = :n"), {"n": number}).scalar() == number
        upgrade()
        db.session.remove()
        stored = db.session.execute(text("SELECT id_number FROM person")).scalars().all()
        assert all(s.startswith(_ring(app).active + "$") for s in stored)
        assert {p.id: (p.id_number, p.phone) for p in db.session.execute(select(Person)).scalars()} == before
        assert {u.id: u.contact_phone for u in db.session.execute(select(Unit)).scalars()} == units
        user = db.session.execute(select(CEUser).join(Person, CEUser.person_id == Person.id)
                                  .where(Person.id_number == number)).scalar_one()
        assert user.username == accounts.id_account_name(number)


def test_both_key_files_are_made_and_refused_the_same_way(tmp_path, caplog, monkeypatch):
    """One key module (app/models/crypto.py): the audit key and the data keys are
    created 0600 under VAR_DIR in the embedded default, announced, read again
    unchanged, and a named file that is missing is refused (never re-created)."""
    from app.models import crypto
    from app.models.crypto import load_key, load_keyring

    # (alembic's logging setup, run by other tests' migrations, disables existing loggers)
    monkeypatch.setattr(crypto.log, "disabled", False)
    cfg = {"VAR_DIR": str(tmp_path / "var")}
    with caplog.at_level("WARNING"):
        key = load_key(cfg, "AUDIT_KEY")
        ring = load_keyring(str(tmp_path / "var" / "data.key"), create=True)
    assert len(key) == 32 and load_key(cfg, "AUDIT_KEY") == key
    for name in ("audit_key.key", "data.key"):
        assert os.stat(tmp_path / "var" / name).st_mode & 0o777 == 0o600
    assert "审计日志密钥（AUDIT_KEY）已生成" in caplog.text and "个人信息加密密钥已生成" in caplog.text
    assert load_keyring(str(tmp_path / "var" / "data.key")).index_key == ring.index_key
    with pytest.raises(KeyFileError):
        load_key(dict(cfg, AUDIT_KEY_FILE=str(tmp_path / "gone.key")), "AUDIT_KEY")
    with pytest.raises(KeyFileError):
        load_keyring(str(tmp_path / "gone.key"))
    assert not (tmp_path / "gone.key").exists()
    assert load_key({"AUDIT_KEY": key.hex()}, "AUDIT_KEY") == key
