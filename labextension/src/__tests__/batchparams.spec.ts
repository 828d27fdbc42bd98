import {
  batchBody,
  fieldKind,
  initialForm,
  initialValue,
  type INotebookParameter,
  parseValue,
  pythonString,
  pythonToJSON,
  serverFieldErrors
} from '../batchparams';

function param(name: string, type: string, source: string): INotebookParameter {
  return { name, type, default: source, help: '' };
}

const DECLARED = [
  param('epochs', 'int', '10'),
  param('rate', 'float', '0.5'),
  param('label', 'str', "'baseline'"),
  param('verbose', 'bool', 'False'),
  param('layers', 'list', '[64, 32]'),
  param('extra', 'dict', "{'a': True, 'b': None}"),
  param('seed', 'None', 'None')
];

describe('typing the declared parameters', () => {
  it('maps papermill types to fields', () => {
    expect(DECLARED.map(p => fieldKind(p.type))).toEqual([
      'int',
      'float',
      'str',
      'bool',
      'list',
      'dict',
      'any'
    ]);
  });

  it('pre-fills each field from the Python default', () => {
    expect(DECLARED.map(initialValue)).toEqual([
      '10',
      '0.5',
      'baseline',
      false,
      '[64, 32]',
      '{"a": true, "b": null}',
      ''
    ]);
    expect(pythonString('"it\\\'s"')).toBe("it's");
    expect(pythonString('x + 1')).toBeNull();
    expect(pythonToJSON('(1, 2)')).toBe('[1, 2]');
    expect(pythonToJSON('os.environ')).toBeNull();
  });
});

describe('parsing what was entered', () => {
  it('parses each type and names what is wrong', () => {
    expect(parseValue(DECLARED[0], '12')).toEqual({ value: 12 });
    expect(parseValue(DECLARED[0], '1.5')).toEqual({
      error: "epochs must be a whole number (got '1.5')"
    });
    expect(parseValue(DECLARED[1], '1e-3')).toEqual({ value: 0.001 });
    expect(parseValue(DECLARED[1], 'fast')).toEqual({
      error: "rate must be a number like 0.5 (got 'fast')"
    });
    expect(parseValue(DECLARED[3], true)).toEqual({ value: true });
    expect(parseValue(DECLARED[4], '[1]')).toEqual({ value: [1] });
    expect(parseValue(DECLARED[4], '{"a": 1}')).toEqual({
      error: 'layers must be a JSON list like [1, 2] (got \'{"a": 1}\')'
    });
    expect(parseValue(DECLARED[6], '')).toEqual({ value: null });
    expect(parseValue(DECLARED[6], '42')).toEqual({ value: 42 });
    expect(parseValue(DECLARED[6], 'abc')).toEqual({ value: 'abc' });
  });
});

describe('batchBody', () => {
  const declared = { path: 'work/train.ipynb', name: 'train', parameters: DECLARED };

  it('sends only the parameters changed, resources and no schedule off Kubernetes', () => {
    const form = initialForm('work/train.ipynb', declared, 'local');
    expect(form.name).toBe('train');
    form.values['epochs'] = '3';
    form.values['verbose'] = true;
    form.cpu = '2';
    form.schedule = '0 3 * * *';
    expect(batchBody(form, DECLARED)).toEqual({
      body: {
        kind: 'notebook',
        notebook: 'work/train.ipynb',
        name: 'train',
        backend: 'local',
        parameters: { epochs: 3, verbose: true },
        resources: { cpu: '2' }
      }
    });
  });

  it('sends the schedule on Kubernetes', () => {
    const form = { ...initialForm('a.ipynb', null, 'kubernetes'), schedule: '*/5 * * * *' };
    expect(batchBody(form, [])).toEqual({
      body: {
        kind: 'notebook',
        notebook: 'a.ipynb',
        backend: 'kubernetes',
        schedule: '*/5 * * * *'
      }
    });
  });

  it('lists every bad field', () => {
    const form = initialForm('a.ipynb', declared, '');
    form.values['epochs'] = 'ten';
    form.values['rate'] = '';
    form.gpus = 'two';
    const result = batchBody(form, DECLARED);
    expect('errors' in result && result.errors.map(e => e.field)).toEqual([
      'parameters.epochs',
      'parameters.rate',
      'gpus'
    ]);
  });

  it("maps the server's field errors", () => {
    const body = { fields: [{ field: 'resources.memory', message: 'must be a size' }, { x: 1 }] };
    expect(serverFieldErrors(body)).toEqual([{ field: 'memory', message: 'must be a size' }]);
    expect(serverFieldErrors({})).toEqual([]);
  });
});
