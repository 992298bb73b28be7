import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from imreward.annotate import labels
from imreward.annotate.database import make_engine, migrate
from imreward.annotate.models import Base

from annotate.annotate_helpers import assignment_id_of


def test_migrations_build_exactly_the_model_schema(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert "alembic_version" in inspect(connection).get_table_names()


def test_sqlite_database_runs_in_wal_mode(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.fixture
def alice_p1(sqlite_platform):
    sqlite_platform.assign(["p1"], ["alice"])
    alice = sqlite_platform.user("alice")
    session = sqlite_platform.sessions()
    assignment = labels.owned_assignment(session, assignment_id_of(session, alice.id, "p1"), alice)
    session.commit()  # release SQLite's write lock so other sessions can run
    yield session, assignment, alice
    session.close()


def reload(session, assignment, user):
    session.expire_all()
    return labels.owned_assignment(session, assignment.id, user)


def test_stages_advance_as_labels_are_saved(alice_p1):
    session, assignment, alice = alice_p1
    assert labels.next_stage(assignment) == "prompt"
    labels.save_prompt_label(session, assignment, "category", "Food")
    assignment = reload(session, assignment, alice)
    assert labels.next_stage(assignment) == "rate"
    with pytest.raises(labels.InvalidLabel, match="'rate' is not finished"):
        labels.complete(session, assignment)
    for label in assignment.image_labels:
        for field in ("alignment", "fidelity", "harmlessness", "overall"):
            labels.save_image_label(session, assignment, label.image_id, field, 4)
    assert labels.next_stage(reload(session, assignment, alice)) == "rank"


def test_a_prompt_flagged_to_drop_can_be_completed_at_once(alice_p1):
    session, assignment, alice = alice_p1
    labels.save_prompt_label(session, assignment, "not_drawable", True)
    assignment = reload(session, assignment, alice)
    assert assignment.dropped and labels.next_stage(assignment) is None
    labels.complete(session, assignment)
    assert reload(session, assignment, alice).completed_at is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [("overall", 0), ("overall", 8), ("overall", "5"), ("overall", True), ("rank", 4),
     ("artifacts", 1), ("shoe_size", 3)],
)
def test_invalid_image_labels_are_refused(alice_p1, field, value):
    session, assignment, _ = alice_p1
    with pytest.raises(labels.InvalidLabel):
        labels.save_image_label(session, assignment, assignment.image_labels[0].image_id, field, value)


def test_labels_for_images_of_other_prompts_are_refused(alice_p1, sqlite_platform):
    session, assignment, _ = alice_p1
    other_image = sqlite_platform.image_ids("p2")[0]
    with pytest.raises(labels.InvalidLabel, match="not part of"):
        labels.save_image_label(session, assignment, other_image, "overall", 3)
    with pytest.raises(labels.InvalidLabel, match="unknown category"):
        labels.save_prompt_label(session, assignment, "category", "<b>Spam</b>")


def test_contradictions_name_pairs_ranked_against_their_ratings(alice_p1):
    session, assignment, alice = alice_p1
    first, second, third = (label.image_id for label in assignment.image_labels)
    for image_id, overall, rank in ((first, 6, 2), (second, 4, 1), (third, 4, 2)):
        labels.save_image_label(session, assignment, image_id, "overall", overall)
        labels.save_image_label(session, assignment, image_id, "rank", rank)
    found = labels.contradictions(reload(session, assignment, alice).image_labels)
    assert [c.message for c in found] == ["Image 2 is ranked above image 1 but rated lower overall (4 < 6)."]
