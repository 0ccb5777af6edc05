def test_home_redirects_anonymous_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_marketer_lands_on_their_org(login, acme_marketer):
    response = login(acme_marketer).get("/")
    assert response.status_code == 302
    assert response["Location"] == "/o/acme/"
