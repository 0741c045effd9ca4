use super::*;

fn ok(kind: &str, value: &str, country: Option<&str>) -> (String, String) {
    match check(kind, value, country) {
        Ok(Checked { value, country }) => (value, country),
        Err(fault) => panic!("{kind} {value}: {fault:?}"),
    }
}

fn value_fault(kind: &str, value: &str, country: Option<&str>) -> bool {
    matches!(check(kind, value, country), Err(Fault::Value(_)))
}

#[test]
fn eu_vat_follows_each_member_state_and_is_stored_compact() {
    let valid = [
        ("ATU12345678", "AT"),
        ("BE0123456789", "BE"),
        ("BG123456789", "BG"),
        ("CY12345678X", "CY"),
        ("CZ12345678", "CZ"),
        ("DE123456789", "DE"),
        ("DK12345678", "DK"),
        ("EE123456789", "EE"),
        ("EL123456789", "GR"),
        ("ESX1234567X", "ES"),
        ("ESA12345678", "ES"),
        ("FI12345678", "FI"),
        ("FRXX123456789", "FR"),
        ("HR12345678901", "HR"),
        ("HU12345678", "HU"),
        ("IE1234567WA", "IE"),
        ("IE1A23456W", "IE"),
        ("IT12345678901", "IT"),
        ("LT123456789012", "LT"),
        ("LU12345678", "LU"),
        ("LV12345678901", "LV"),
        ("MT12345678", "MT"),
        ("NL123456789B01", "NL"),
        ("PL1234567890", "PL"),
        ("PT123456789", "PT"),
        ("RO1234", "RO"),
        ("SE123456789001", "SE"),
        ("SI12345678", "SI"),
        ("SK1234567890", "SK"),
        ("XI123456789", "GB"),
    ];
    for (value, country) in valid {
        assert_eq!(
            ok("eu_vat", value, Some(country)),
            (value.into(), country.into())
        );
    }
    assert_eq!(
        ok("eu_vat", "de 123.456.789", None),
        ("DE123456789".into(), "DE".into())
    );
    assert_eq!(ok("eu_vat", "NL 1234.56.789.B01", None).0, "NL123456789B01");
}

#[test]
fn eu_vat_refuses_wrong_formats_prefixes_and_countries() {
    for bad in [
        "ATU1234567",
        "AT12345678",
        "BE2123456789",
        "DE12345678",
        "ES123456789",
        "FRIO123456789",
        "NL123456789A01",
        "SE123456789002",
        "RO0123",
        "GR123456789",
        "123456789",
        "US123456789",
        "",
        "D",
    ] {
        assert!(value_fault("eu_vat", bad, None), "{bad} was accepted");
    }
    assert!(value_fault("eu_vat", "DE123456789", Some("FR")));
    assert!(value_fault("eu_vat", "EL123456789", Some("EL")));
}

#[test]
fn cpf_check_digits_are_verified() {
    assert_eq!(
        ok("br_cpf", "123.456.789-09", None),
        ("12345678909".into(), "BR".into())
    );
    assert_eq!(ok("br_cpf", "52998224725", Some("BR")).0, "52998224725");
    // The SPEC's illustration `123.456.789-87` has the wrong check digits.
    for bad in [
        "123.456.789-87",
        "123.456.789-00",
        "111.111.111-11",
        "00000000000",
        "1234567890",
        "123456789-09",
        "123 456 789 09",
        "123.456.78909",
    ] {
        assert!(value_fault("br_cpf", bad, None), "{bad} was accepted");
    }
    assert!(matches!(
        check("br_cpf", "12345678909", Some("PT")),
        Err(Fault::Country(_))
    ));
}

#[test]
fn cnpj_check_digits_are_verified_numeric_and_alphanumeric() {
    assert_eq!(
        ok("br_cnpj", "11.222.333/0001-81", None).0,
        "11222333000181"
    );
    assert_eq!(ok("br_cnpj", "11222333000181", None).0, "11222333000181");
    // The Receita Federal's published example of the alphanumeric form.
    assert_eq!(
        ok("br_cnpj", "12.ABC.345/01DE-35", None).0,
        "12ABC34501DE35"
    );
    for bad in [
        "11.222.333/0001-82",
        "01.234.456/5432-10",
        "11111111111111",
        "1122233300018",
        "11.222.333-0001/81",
        "12ABC34501DE3A",
    ] {
        assert!(value_fault("br_cnpj", bad, None), "{bad} was accepted");
    }
}

#[test]
fn abn_and_cuit_checksums_are_verified() {
    assert_eq!(
        ok("au_abn", "51 824 753 556", None),
        ("51824753556".into(), "AU".into())
    );
    assert!(value_fault("au_abn", "51 824 753 557", None));
    assert!(value_fault("au_abn", "01 824 753 556", None));
    assert_eq!(
        ok("ar_cuit", "20-12345678-6", None),
        ("20123456786".into(), "AR".into())
    );
    assert_eq!(ok("ar_cuit", "20123456786", None).0, "20123456786");
    for bad in ["20-12345678-5", "21-12345678-6", "2012345678"] {
        assert!(value_fault("ar_cuit", bad, None), "{bad} was accepted");
    }
}

#[test]
fn the_other_national_types_have_their_formats() {
    let valid = [
        ("gb_vat", "GB 123 4567 89", "GB123456789"),
        ("gb_vat", "123456789012", "GB123456789012"),
        ("gb_vat", "GBGD001", "GBGD001"),
        ("gb_vat", "HA599", "GBHA599"),
        ("ch_vat", "CHE-123.456.789 MWST", "CHE123456789MWST"),
        ("ch_vat", "CHE123456789", "CHE123456789"),
        ("no_vat", "123 456 789", "NO123456789MVA"),
        ("no_vat", "NO123456789MVA", "NO123456789MVA"),
        ("us_ein", "12-3456789", "123456789"),
        ("ca_bn", "123456789", "123456789"),
        ("ca_bn", "123456789 RT 0001", "123456789RT0001"),
        ("in_gst", "27AAPFU0939F1ZV", "27AAPFU0939F1ZV"),
        ("in_gst", "27aapfu0939f1zv", "27AAPFU0939F1ZV"),
        ("mx_rfc", "GODE561231GR8", "GODE561231GR8"),
        ("mx_rfc", "ABC-000229-XY1", "ABC000229XY1"),
        ("mx_rfc", "ÑAB-991231-AB1", "ÑAB991231AB1"),
    ];
    for (kind, value, stored) in valid {
        assert_eq!(ok(kind, value, None).0, stored, "{kind} {value}");
    }
    let invalid = [
        ("gb_vat", "GB12345678"),
        ("gb_vat", "GBGD500"),
        ("gb_vat", "GBHA499"),
        ("ch_vat", "CHE12345678"),
        ("ch_vat", "123456789"),
        ("ch_vat", "CHE123456789VAT"),
        ("no_vat", "12345678"),
        ("us_ein", "00-1234567"),
        ("us_ein", "12-345678"),
        ("ca_bn", "12345678"),
        ("ca_bn", "123456789RT01"),
        ("in_gst", "27AAPFU0939F1AV"),
        ("in_gst", "40AAPFU0939F1ZV"),
        ("mx_rfc", "GODE561331GR8"),
        ("mx_rfc", "GODE010229GR8"),
        ("mx_rfc", "GO1E561231GR8"),
    ];
    for (kind, value) in invalid {
        assert!(
            value_fault(kind, value, None),
            "{kind} {value} was accepted"
        );
    }
}

#[test]
fn a_national_type_must_match_its_country() {
    assert_eq!(ok("in_gst", "27AAPFU0939F1ZV", Some("IN")).1, "IN");
    for kind in [
        "gb_vat", "ch_vat", "no_vat", "us_ein", "ca_bn", "au_abn", "in_gst", "mx_rfc", "ar_cuit",
    ] {
        assert!(is_national(kind));
        assert!(
            matches!(check(kind, "x", Some("ZZ")), Err(Fault::Country(_))),
            "{kind}"
        );
    }
    assert!(!is_national("eu_vat") && !is_national("other"));
}
