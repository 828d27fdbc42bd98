import {
  errorSummary,
  extraErrors,
  fieldLabels,
  fieldProblems,
  formErrors,
  hiddenErrors,
  locateField,
  parseCount
} from '../formerrors';
import { formSchema } from '../schema';
import type { IJSONSchema } from '../types';
import podSchema from './pod.schema.json';

const schema = formSchema(podSchema as IJSONSchema, 'pod', { advanced: true });

describe('field errors from a 400', () => {
  it('keeps only well-formed fields', () => {
    expect(fieldProblems({ message: 'x' })).toEqual([]);
    expect(
      fieldProblems({ fields: [{ field: 'memory', message: 'm' }, { nope: 1 }, 'x'] } as never)
    ).toEqual([{ field: 'memory', message: 'm' }]);
  });

  it('finds top-level, dotted and nested-by-leaf fields', () => {
    expect(locateField(schema, 'timeout')).toEqual(['timeout']);
    expect(locateField(schema, 'resources.memory')).toEqual(['resources', 'memory']);
    expect(locateField(schema, 'memory')).toEqual(['resources', 'memory']);
    expect(locateField(schema, 'no_such_field')).toBeNull();
  });

  it('names every bad field with its form label and maps it to its input', () => {
    const body = {
      message: 'invalid --memory',
      fields: [
        { field: 'memory', message: "must be a size like 4Gi or 512Mi (got 'lots')" },
        { field: 'resources.cpu', message: "must be a number of cores like 2 or 500m (got 'x')" },
        { field: 'mystery', message: 'is wrong' }
      ]
    };
    const errors = formErrors(schema, body as never, 'fallback');
    expect(errors.fields.map(e => [e.id, e.label])).toEqual([
      ['root_resources_memory', 'Resources › Memory'],
      ['root_resources_cpu', 'Resources › CPU']
    ]);
    expect(errors.others).toEqual(['Mystery: is wrong']);
    expect(extraErrors(errors.fields)).toEqual({
      resources: {
        memory: { __errors: ["must be a size like 4Gi or 512Mi (got 'lots')"] },
        cpu: { __errors: ["must be a number of cores like 2 or 500m (got 'x')"] }
      }
    });
    const summary = errorSummary(errors);
    expect(summary).toMatch(/^3 fields need a change/);
    expect(summary).toContain('Resources › Memory');
    expect(summary).toContain('Resources › CPU');
    expect(summary).not.toContain('--');
  });

  it('falls back to the message when the server lists no fields', () => {
    const errors = formErrors(
      schema,
      { message: 'a workload named x exists' },
      'a workload named x exists — choose another name'
    );
    expect(errors.fields).toEqual([]);
    expect(errorSummary(errors)).toBe('a workload named x exists — choose another name');
  });

  it('says when a bad field is outside the short form', () => {
    const errors = formErrors(
      schema,
      { fields: [{ field: 'retries', message: 'bad' }] } as never,
      ''
    );
    expect(hiddenErrors(errors.fields, ['name', 'resources'])).toBe(true);
    expect(hiddenErrors(errors.fields, ['retries'])).toBe(false);
  });

  it('gives every input an accessible name', () => {
    const labels = fieldLabels(schema);
    expect(labels['root_name']).toBe('Name');
    expect(labels['root_resources_memory']).toBe('Resources › Memory');
    expect(labels['root_code']).toBe('Code');
  });
});

describe('the scale field', () => {
  it('accepts a whole number of workers and refuses the rest with a reason', () => {
    expect(parseCount('3')).toEqual({ value: 3, error: null });
    expect(parseCount(' 0 ')).toEqual({ value: 0, error: null });
    expect(parseCount('')).toEqual({
      value: null,
      error: 'enter the number of workers (0 to 1000)'
    });
    expect(parseCount('-3').error).toBe('-3 workers is out of range: enter 0 to 1000');
    expect(parseCount('2.5').error).toMatch(/whole number/);
    expect(parseCount('lots').error).toMatch(/not a number/);
  });
});
