"""Carbon accounting that knows where and when.

Modules (import the one you need; nothing heavy is imported here)::

    regions     what users type -> canonical zone; resolve_region (arg > env > config > default)
    sources     IntensitySource ABC, IntensityPoint, FallbackSource, get_source(), static_annual()
    static      codecarbon's shipped annual averages (offline default)
    csvsource   load_csv(): Electricity Maps exports, EIA-930, custom layouts; CsvSource
    providers   Electricity Maps, WattTime, UK Carbon Intensity (HTTP, cache, retries)
    series      IntensitySeries (exact step integral), Provenance
    regular     gap / duplicate / step rules shared by CSV and providers
    accounting  co2e_g(), account_samples(), static_co2e_g(), predict_final()
    whatif      whatif() on arrays, whatif_run() on a stored run
    lookup      lookup_intensity(): the `greentrack intensity` command's one call
"""
