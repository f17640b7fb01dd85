from leadmarket import zipcodes


def test_the_wsgi_module_loads_the_zip_codes_before_the_first_request():
    zipcodes._index.cache_clear()

    import leadmarket.wsgi

    leadmarket.wsgi.warm_up()

    assert zipcodes._index.cache_info().currsize == 1
