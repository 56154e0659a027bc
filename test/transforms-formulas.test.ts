import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  bmrFromProfile,
  bmrMifflinStJeor,
  cleanFloat,
  eer,
  isFlatBmrCalories,
  profileHeightCm,
  profileWeightKg,
  strideMetres,
  type CaloriesPoint,
} from '../transforms/formulas.js';
import type { FitbitProfile } from '../sources/fitbit/types.js';

const SAMPLES = fileURLToPath(new URL('../../shared/data/fitbit-api-samples/', import.meta.url));

function near(t: { true: (v: boolean, m?: string) => void }, actual: number | null, expected: number, eps: number, what: string): void {
  t.true(actual !== null && Math.abs(actual - expected) <= eps, `${what}: ${String(actual)} vs ${expected}`);
}

test('Mifflin-St Jeor, original coefficients (worked by hand)', (t) => {
  // male 80 kg, 180 cm, 30 y: 799.2 + 1125 − 147.6 + 5 = 1781.6
  near(t, bmrMifflinStJeor({ weightKg: 80, heightCm: 180, ageYears: 30, sex: 'male' }), 1781.6, 1e-9, 'male');
  // female 60 kg, 165 cm, 40 y: 599.4 + 1031.25 − 196.8 − 161 = 1272.85
  near(t, bmrMifflinStJeor({ weightKg: 60, heightCm: 165, ageYears: 40, sex: 'female' }), 1272.85, 1e-9, 'female');
  t.is(bmrMifflinStJeor({ weightKg: 0, heightCm: 165, ageYears: 40, sex: 'female' }), null);
});

test('BMR from a profile in each unit system', (t) => {
  const base: FitbitProfile = { timezone: 'UTC', offsetFromUTCMillis: 0, gender: 'MALE', age: 30 };
  const metric = bmrFromProfile({ ...base, weight: 80, height: 180 }, 'metric');
  const us = bmrFromProfile({ ...base, weight: 80 / 0.45359237, height: 180 / 2.54 }, 'en_US'); // lb, in
  const gb = bmrFromProfile({ ...base, weight: 80 / 6.35029318, height: 180 }, 'en_GB'); // stone, cm
  near(t, metric, 1781.6, 1e-9, 'metric');
  near(t, us, 1781.6, 1e-6, 'en_US');
  near(t, gb, 1781.6, 1e-6, 'en_GB');
  t.is(bmrFromProfile({ ...base, weight: 0, height: 180 }, 'metric'), null, 'weight 0 means never entered');
  t.is(bmrFromProfile({ ...base, weight: 80, height: 180, gender: 'NA' }, 'metric'), null);
  t.is(bmrFromProfile({ ...base, weight: 80, height: 180, age: undefined }, 'metric'), null);
});

test('EER (IOM, PA 1.0) worked by hand; null under 19', (t) => {
  // men: 864 − 9.72·30 + 14.2·80 + 503·1.80 = 864 − 291.6 + 1136 + 905.4 = 2613.8
  near(t, eer({ weightKg: 80, heightCm: 180, ageYears: 30, sex: 'male' }), 2613.8, 1e-9, 'men');
  // women: 387 − 7.31·40 + 10.9·60 + 660.7·1.65 = 387 − 292.4 + 654 + 1090.155 = 1838.755
  near(t, eer({ weightKg: 60, heightCm: 165, ageYears: 40, sex: 'female' }), 1838.755, 1e-9, 'women');
  // PA scales the body term only: men, PA 1.25: 864 − 291.6 + 1.25·(1136 + 905.4) = 3124.15
  near(t, eer({ weightKg: 80, heightCm: 180, ageYears: 30, sex: 'male' }, 1.25), 3124.15, 1e-9, 'PA');
  t.is(eer({ weightKg: 60, heightCm: 165, ageYears: 17, sex: 'female' }), null);
});

test('unit conversions and strides', (t) => {
  const p: FitbitProfile = { timezone: 'UTC', offsetFromUTCMillis: 0, strideLengthWalking: 75.10000000000001, strideLengthRunning: 94.2, weight: 11, height: 70 };
  t.is(strideMetres(p, 'metric', 'walking'), 0.751);
  t.is(strideMetres(p, 'en_GB', 'running'), 0.942);
  t.is(strideMetres({ ...p, strideLengthWalking: 30 }, 'en_US', 'walking'), 0.762);
  t.is(strideMetres({ ...p, strideLengthRunning: 0 }, 'metric', 'running'), null);
  t.is(profileWeightKg(p, 'en_GB'), 69.8532249800); // 11 st × 6.35029318 kg
  t.is(profileWeightKg(p, 'en_US'), 4.98951607); // 11 lb × 0.45359237 kg
  t.is(profileHeightCm(p, 'en_US'), 177.8);
  t.is(cleanFloat(75.10000000000001), 75.1);
  t.is(cleanFloat(0.1 + 0.2), 0.3);
});

function realCalories(): CaloriesPoint[] {
  let text = readFileSync(SAMPLES + 'IntradayActivitiesCalories.json', 'utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const body = JSON.parse(text) as { 'activities-calories-intraday': { dataset: Array<{ value: number; level: number }> } };
  return body['activities-calories-intraday'].dataset.map((p) => ({ value: p.value, level: p.level, interval: 60 }));
}

test('flat BMR day: the real worn day is not flat; its own sedentary value all day is', (t) => {
  const worn = realCalories();
  t.is(worn.length, 1440);
  t.false(isFlatBmrCalories(worn));
  // The sample's sedentary minutes (level 0, mets 10) are 1.1857000589370728 kcal, with a
  // float-noise twin 1.1857000589370628: a not-worn day repeats that value all day.
  const sedentary = worn[0]!.value;
  const flat = worn.map((p, i) => ({ value: i === 1 ? worn[1]!.value : sedentary, level: 0, interval: 60 }));
  t.true(isFlatBmrCalories(flat));
  // The BMR cross-check: 1.1857 × 1440 = 1707 kcal/day.
  t.true(isFlatBmrCalories(flat, { bmrKcalPerDay: 1700 }));
  t.false(isFlatBmrCalories(flat, { bmrKcalPerDay: 2500 }));
  // Spring-forward day: 1380 minutes still count as the whole day.
  t.true(isFlatBmrCalories(flat.slice(0, 1380)));
  // Half a day, one active minute, or a 2% step are not flat.
  t.false(isFlatBmrCalories(flat.slice(0, 720)));
  t.false(isFlatBmrCalories(flat.map((p, i) => (i === 700 ? { ...p, level: 1 } : p))));
  t.false(isFlatBmrCalories(flat.map((p, i) => (i >= 700 ? { ...p, value: p.value * 1.02 } : p))));
  // Zero calories (the "missing date" sample) is no BMR fill.
  t.false(isFlatBmrCalories(flat.map((p) => ({ ...p, value: 0 }))));
  t.false(isFlatBmrCalories([]));
  // 15-minute buckets: 96 points cover the day.
  t.true(isFlatBmrCalories(Array.from({ length: 96 }, () => ({ value: sedentary * 15, level: 0, interval: 900 })), { bmrKcalPerDay: 1707 }));
});
