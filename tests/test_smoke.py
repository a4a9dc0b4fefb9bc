from django_biginterview.testing.factories import AccountFactory, InterviewFactory


def test_factories_build_related_rows(db):
    interview = InterviewFactory()
    assert interview.account.user.email.endswith("@example.com")
    assert AccountFactory().partner_id != interview.account.partner_id
